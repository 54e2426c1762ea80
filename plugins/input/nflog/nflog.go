// Package nflog is the NFLOG source: packets logged by nft's `log group N`
// or iptables' `-j NFLOG --nflog-group N`, read from nfnetlink_log, as
// ulogd2's ulogd_inppkt_NFLOG.so produces them.
//
// Start binds the group (and, for group 0 or bind=1, the protocol families,
// as ulogd2 does) and configures copy mode, batching and flags on the
// socket that then receives the packets. Run reads it with recvmmsg into
// reused buffers, decodes every message in place and emits one record per
// packet. See README.md.
package nflog

import (
	_ "embed"

	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/logging"
	"github.com/ulogd-go/ulogd/internal/nl"
	"github.com/ulogd-go/ulogd/internal/nl/eventsock"
	"github.com/ulogd-go/ulogd/internal/nl/nflog"
	"github.com/ulogd-go/ulogd/internal/plugin"
)

//go:embed sample.conf
var sample string

func init() { plugin.Register(Descriptor()) }

// Descriptor returns the NFLOG plugin descriptor.
func Descriptor() *plugin.Descriptor {
	return plugin.Define(plugin.Def[Config]{
		Name:      "NFLOG",
		Kind:      plugin.Source,
		Summary:   "packets logged by nft `log group N` / iptables -j NFLOG, from nfnetlink_log",
		Input:     plugin.DTSource,
		Output:    plugin.DTRaw,
		NewConfig: defaultConfig,
		Options: map[string]string{
			"bufsize":                       "buffer for one received datagram (a kernel batch), bytes",
			"group":                         "log group to bind (nft `log group N`, iptables `--nflog-group N`), 0–65535",
			"unbind":                        "with `group=0` or `bind=1`: unbind each family's existing logger first",
			"bind":                          "≠0: bind the protocol families also for a non-zero group",
			"seq_local":                     "≠0: per-group sequence numbers (`oob.seq.local`, from 0); gaps count as lost",
			"seq_global":                    "≠0: namespace-wide sequence numbers (`oob.seq.global`)",
			"numeric_label":                 "constant copied to `raw.label` (0–255)",
			"netlink_socket_buffer_size":    "socket receive buffer in bytes; 0 = 64 MiB",
			"netlink_socket_buffer_maxsize": "growth limit on overruns; 0 = never grow",
			"netlink_qthreshold":            "≠0: packets per kernel batch (kernel default 100)",
			"netlink_qtimeout":              "≠0: kernel flush timeout in 1/100 s (kernel default 100)",
			"attach_conntrack":              "≠0: the kernel attaches the packet's conntrack entry (`ct`)",
		},
		Sample:    sample,
		Keys:      keysOf,
		Resources: resourcesOf,
		New:       newInstance,
	})
}

func keysOf(c *Config) (in, out []keys.Spec, err error) {
	return nil, OutputKeys(), c.validate()
}

// resourcesOf claims the log group: the kernel lets one socket bind it.
func resourcesOf(c *Config) []string {
	return []string{"nflog-group:" + strconv.Itoa(c.Group)}
}

// Tunables.
const (
	batchMemory   = 2 << 20 // receive slots per recvmmsg: about this many bytes
	maxBatchCount = 64
	minBatchCount = 4
)

// Protocol families of the legacy per-family commands, in ulogd's order.
var legacyFamilies = [...]uint8{unix.AF_INET, unix.AF_INET6, unix.AF_BRIDGE}

// instance is one running NFLOG instance.
type instance struct {
	cfg   Config
	group uint16
	log   *slog.Logger
	sl    slots
	now   func() time.Time

	done     chan struct{} // closed by Stop
	stopOnce sync.Once
	mu       sync.Mutex
	em       plugin.Emitter // set by Run; for Sync
	conn     *nl.Conn
	bound    bool // the group is bound: unbind it at stop

	rx rxState // owned by the receive goroutine (Start before Run)
}

// rxState is the receive loop and its reused state.
type rxState struct {
	// loop is the socket's buffer, loss accounting and read loop;
	// loop.SeqCounts is seq_local: losses come from sequence gaps.
	loop      eventsock.Loop
	h         receiver // the loop's handler
	pkt       nflog.Packet
	startLost uint64 // packets read and discarded while configuring

	lastSeq uint32
	haveSeq bool
	gapNote logging.Limiter

	unknown uint64
}

func newInstance(env *plugin.Env, c *Config) (plugin.Instance, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	if err := env.CheckOut("NFLOG", int(numKeys)); err != nil {
		return nil, err
	}
	log := env.Logger()
	in := &instance{
		cfg:   *c,
		group: uint16(c.Group),
		log:   log,
		now:   time.Now,
		done:  make(chan struct{}),
	}
	in.rx.loop = eventsock.Loop{
		Buffer:       eventsock.Buffer{Name: "NFLOG", Log: log, MaxSize: c.BufferMaxSize, SeqCounts: c.SeqLocal != 0},
		DecodeMsg:    "NFLOG cannot decode a packet message (skipped)",
		TruncatedMsg: fmt.Sprintf("NFLOG datagram larger than bufsize=%d was truncated: packets lost; raise bufsize", c.BufSize),
	}
	copy(in.sl[:], env.Out)
	return in, nil
}

// Start opens the nfnetlink_log socket, sizes its buffer, binds the group
// and configures it as ulogd2 does.
func (in *instance) Start(ctx context.Context) error {
	c, err := nl.Open(unix.NETLINK_NETFILTER)
	if err != nil {
		return fmt.Errorf("NFLOG: open nfnetlink_log socket: %w", err)
	}
	in.mu.Lock()
	in.conn = c
	in.mu.Unlock()
	if err := in.configure(ctx, c); err != nil {
		in.closeAll()
		return err
	}
	return nil
}

func (in *instance) configure(ctx context.Context, c *nl.Conn) error {
	cfg := &in.cfg
	// The buffer first, so that no acknowledgement is dropped.
	in.rx.loop.SetBuffer(ctx, c, cfg.BufferSize)
	ctl := nflog.NewControl(c)
	if cfg.Group == 0 || cfg.Bind != 0 {
		for _, pf := range legacyFamilies {
			if cfg.Unbind > 0 {
				in.log.Log(ctx, logging.LevelNotice, fmt.Sprintf("forcing unbind of existing log handler for protocol %d", pf))
				if err := ctl.PFUnbind(pf); err != nil {
					return fmt.Errorf("unable to force-unbind existing log handler for protocol %d: %w", pf, err)
				}
			}
			in.log.Debug(fmt.Sprintf("binding to protocol family %d", pf))
			if err := ctl.PFBind(pf); err != nil {
				return fmt.Errorf("unable to bind to protocol family %d: %w", pf, err)
			}
		}
	}
	in.log.Debug(fmt.Sprintf("binding to log group %d", cfg.Group))
	if err := ctl.Bind(in.group); err != nil {
		hint := ""
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EBUSY) {
			hint = " (another process, e.g. a running ulogd, has bound it)"
		}
		return fmt.Errorf("unable to bind to log group %d%s: %w", cfg.Group, hint, err)
	}
	in.mu.Lock()
	in.bound = true
	in.mu.Unlock()
	if err := ctl.SetMode(in.group, nflog.CopyPacket, nflog.CopyRangeMax); err != nil {
		in.log.Warn("NFLOG unable to set copy mode packet with range 0xffff", "err", err)
	}
	if v := cfg.QThreshold; v != 0 {
		if err := ctl.SetQThresh(in.group, uint32(v)); err == nil {
			in.log.Log(ctx, logging.LevelNotice, fmt.Sprintf("NFLOG netlink queue threshold has been set to %d", v))
		} else {
			in.log.Log(ctx, logging.LevelNotice, fmt.Sprintf("NFLOG netlink queue threshold can't be set to %d", v), "err", err)
		}
	}
	if v := cfg.QTimeout; v != 0 {
		if err := ctl.SetTimeout(in.group, uint32(v)); err == nil {
			in.log.Log(ctx, logging.LevelNotice, fmt.Sprintf("NFLOG netlink queue timeout has been set to %d", v))
		} else {
			in.log.Log(ctx, logging.LevelNotice, fmt.Sprintf("NFLOG netlink queue timeout can't be set to %d", v), "err", err)
		}
	}
	if flags := cfg.flags(); flags != 0 {
		err := ctl.SetFlags(in.group, flags)
		if err != nil && flags&nflog.FlagConntrack != 0 && errors.Is(err, unix.EOPNOTSUPP) {
			in.log.Warn("NFLOG attach_conntrack=1: conntrack information is not available on this kernel (built without CONFIG_NETFILTER_NETLINK_GLUE_CT); packets are logged without the ct key")
			flags &^= nflog.FlagConntrack
			err = nil
			if flags != 0 {
				err = ctl.SetFlags(in.group, flags)
			}
		}
		if err != nil {
			in.log.Error(fmt.Sprintf("unable to set flags 0x%x", flags), "err", err)
			if flags&nflog.FlagSeq != 0 {
				in.rx.loop.SeqCounts = false
			}
		}
	}
	in.rx.startLost = uint64(ctl.Skipped)
	count := min(max(batchMemory/cfg.BufSize, minBatchCount), maxBatchCount)
	// Coalescing starts after the configuration's answers.
	in.rx.loop.Ready(c, nl.NewBatch(count, cfg.BufSize))
	return nil
}

// Stop unbinds the group and closes the socket; Run returns promptly.
// Signal brings the loss count up to date on SIGUSR1, when the daemon
// reports the counters.
func (in *instance) Signal(sig os.Signal) {
	if sig == syscall.SIGUSR1 {
		in.syncLoss()
	}
}

func (in *instance) Stop(ctx context.Context) error {
	in.closeAll()
	return nil
}

func (in *instance) closeAll() {
	in.stopOnce.Do(func() { close(in.done) })
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.conn == nil {
		return
	}
	// Count drops the receive loop has not read yet: the counters are
	// reported once the sources have stopped.
	if in.em != nil {
		in.rx.loop.Sync(in.em)
	}
	if in.bound {
		// Fire and forget: closing the socket releases the group anyway;
		// the explicit unbind is what ulogd2 does.
		var buf [64]byte
		in.conn.Send(nflog.AppendUnbind(buf[:0], 0, in.group))
		in.bound = false
	}
	in.conn.Close()
	in.conn = nil
}

// Run reads packets until ctx is cancelled or Stop is called.
func (in *instance) Run(ctx context.Context, e plugin.Emitter) error {
	in.mu.Lock()
	in.em = e
	c := in.conn
	in.mu.Unlock()
	var receive func(context.Context) // nil: stopped before Run
	if c != nil {
		receive = func(context.Context) { in.receive(e) }
	}
	plugin.RunLoop(ctx, in.done, in.closeAll, receive)
	return nil
}

// syncLoss counts the socket's drops that the receive loop has not read
// yet (SIGUSR1: the daemon is about to report the counters).
func (in *instance) syncLoss() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.conn != nil && in.em != nil {
		in.rx.loop.Sync(in.em)
	}
}
