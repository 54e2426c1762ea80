// Package nfacct is the NFACCT source: the kernel's extended accounting
// objects (nfnetlink_acct), polled, as ulogd2's ulogd_inpflow_NFACCT.so
// reports them.
//
// Every pollinterval seconds, and at once on SIGUSR2, the instance dumps
// the accounting objects (zeroing their counters in the same atomic step
// with zerocounter=1) and emits one record per object, in the kernel's
// order. See README.md.
package nfacct

import (
	_ "embed"

	"context"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/ulogd-go/ulogd/internal/config"
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/nl/nfacct"
	"github.com/ulogd-go/ulogd/internal/plugin"
)

//go:embed sample.conf
var sample string

func init() { plugin.Register(Descriptor()) }

// Config holds the options of an NFACCT instance, in ulogd2's order and
// with its defaults.
type Config struct {
	PollInterval int `ulogd:"pollinterval,mandatory"`
	ZeroCounter  int `ulogd:"zerocounter"`
	Timestamp    int `ulogd:"timestamp"`
}

func defaultConfig() *Config { return &Config{ZeroCounter: 1} }

// maxPollInterval bounds pollinterval to what a time.Duration holds with
// room to spare (about 68 years).
const maxPollInterval = 1<<31 - 1

// validate checks the options. The config decoder has made sure that
// pollinterval is set; 0, the default, passes unless explicit is true (the
// keys of the defaults are computed for --info and the documentation, and
// New, which --check also runs, refuses it).
func (c *Config) validate(explicit bool) error {
	if c.PollInterval < 0 || c.PollInterval > maxPollInterval || (explicit && c.PollInterval == 0) {
		return config.OptionErrorf("pollinterval", "pollinterval=%d: NFACCT needs a poll interval, a number of seconds from 1 to %d", c.PollInterval, maxPollInterval)
	}
	return nil
}

// Descriptor returns the NFACCT plugin descriptor.
func Descriptor() *plugin.Descriptor {
	return plugin.Define(plugin.Def[Config]{
		Name:      "NFACCT",
		Kind:      plugin.Source,
		Summary:   "accounting objects (nfacct) polled from nfnetlink_acct, optionally read-and-reset",
		Input:     plugin.DTSource,
		Output:    plugin.DTSum,
		NewConfig: defaultConfig,
		Options: map[string]string{
			"pollinterval": "seconds between two dumps of the accounting objects (required, > 0); SIGUSR2 dumps at once",
			"zerocounter":  "≠0: every dump resets the counters it reports (atomic in the kernel), so records carry the counts since the previous dump",
			"timestamp":    "≠0: records carry the time of the dump in `oob.time.sec` and `oob.time.usec`",
		},
		Sample: sample,
		Keys: func(c *Config) ([]keys.Spec, []keys.Spec, error) {
			return nil, OutputKeys(), c.validate(false)
		},
		New: newInstance,
	})
}

// Output keys, in ulogd2's order.
const (
	kName = iota
	kPkts
	kBytes
	kSum
	kTimeSec
	kTimeUsec
	numKeys
)

// OutputKeys returns NFACCT's output keys.
func OutputKeys() []keys.Spec {
	return []keys.Spec{
		kName:     {Name: "sum.name", Type: keys.String},
		kPkts:     {Name: "sum.pkts", Type: keys.Uint64},
		kBytes:    {Name: "sum.bytes", Type: keys.Uint64},
		kSum:      {Name: "sum", Type: keys.Raw},
		kTimeSec:  {Name: "oob.time.sec", Type: keys.Uint32},
		kTimeUsec: {Name: "oob.time.usec", Type: keys.Uint32},
	}
}

// instance is one running NFACCT instance.
type instance struct {
	interval time.Duration
	zero     bool
	stamp    bool
	out      []keys.Slot
	log      *slog.Logger

	// now is the clock of the timestamps and ticks the poll schedule;
	// tests replace them.
	now   func() time.Time
	ticks func(d time.Duration) (<-chan time.Time, func())

	usr2     chan struct{} // SIGUSR2 polls (one pending at most)
	done     chan struct{} // closed by Stop
	stopOnce sync.Once

	mu   sync.Mutex
	conn *nfacct.Conn
}

func newInstance(env *plugin.Env, c *Config) (plugin.Instance, error) {
	if err := c.validate(true); err != nil {
		return nil, err
	}
	if err := env.CheckOut("NFACCT", numKeys); err != nil {
		return nil, err
	}
	return &instance{
		interval: time.Duration(c.PollInterval) * time.Second,
		zero:     c.ZeroCounter != 0,
		stamp:    c.Timestamp != 0,
		out:      env.Out,
		log:      env.Logger(),
		now:      time.Now,
		ticks: func(d time.Duration) (<-chan time.Time, func()) {
			t := time.NewTicker(d)
			return t.C, t.Stop
		},
		usr2: make(chan struct{}, 1),
		done: make(chan struct{}),
	}, nil
}

// Start opens the netlink socket, in the namespace of the calling thread.
func (in *instance) Start(context.Context) error {
	c, err := nfacct.Dial(0)
	if err != nil {
		return err
	}
	in.mu.Lock()
	in.conn = c
	in.mu.Unlock()
	return nil
}

// Stop closes the socket and makes Run return.
func (in *instance) Stop(context.Context) error {
	in.stopOnce.Do(func() { close(in.done) })
	return in.closeConn()
}

func (in *instance) closeConn() error {
	in.mu.Lock()
	c := in.conn
	in.conn = nil
	in.mu.Unlock()
	if c == nil {
		return nil
	}
	return c.Close()
}

// Signal makes SIGUSR2 poll at once (a second SIGUSR2 before that poll
// starts is merged into it).
func (in *instance) Signal(sig os.Signal) {
	if sig == syscall.SIGUSR2 {
		select {
		case in.usr2 <- struct{}{}:
		default:
		}
	}
}

// Run polls every interval (the first poll one interval after the start,
// as ulogd2) and on SIGUSR2, until ctx ends or Stop.
func (in *instance) Run(ctx context.Context, em plugin.Emitter) error {
	r := em.NewRecord()
	plugin.RunLoop(ctx, in.done, func() { in.closeConn() }, func(ctx context.Context) {
		tick, stop := in.ticks(in.interval)
		defer stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-in.done:
				return
			case <-tick:
			case <-in.usr2:
			}
			in.poll(r, em)
		}
	})
	return nil
}

// poll dumps the objects and emits one record each. With timestamp=1
// every record of the dump carries the time the request was sent. The
// record walks every stack that shares the instance, so they all get the
// same values (ulogd2 gives the time to the first stack only: compat.md
// NFACCT-1).
func (in *instance) poll(r *keys.Record, em plugin.Emitter) {
	in.mu.Lock()
	c := in.conn
	in.mu.Unlock()
	if c == nil {
		return
	}
	t := in.now()
	sec, usec := uint64(uint32(t.Unix())), uint64(t.Nanosecond()/1000)
	err := c.Dump(in.zero, func(o nfacct.Object, payload []byte) {
		r.SetString(in.out[kName], o.Name)
		r.SetUint(in.out[kPkts], o.Pkts)
		r.SetUint(in.out[kBytes], o.Bytes)
		r.SetBytes(in.out[kSum], payload)
		if in.stamp {
			r.SetUint(in.out[kTimeSec], sec)
			r.SetUint(in.out[kTimeUsec], usec)
		}
		em.Emit(r)
	})
	em.Flush()
	if err != nil && !in.stopped() {
		in.log.Error("NFACCT: dump of the accounting objects failed", "err", err)
	}
}

func (in *instance) stopped() bool {
	select {
	case <-in.done:
		return true
	default:
		return false
	}
}
