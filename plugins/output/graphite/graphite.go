// Package graphite is the GRAPHITE sink: accounting records (NFACCT) sent
// to a Carbon server in Graphite's plaintext protocol, as ulogd2's
// ulogd_output_GRAPHITE.so does, two lines per object.
//
// The walk never waits for the server: Interp formats the two lines into a
// bounded queue and a writer goroutine sends them, reconnecting with
// backoff when the connection drops. Lines that cannot be sent are counted
// as dropped. See README.md.
package graphite

import (
	_ "embed"

	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/ulogd-go/ulogd/internal/config"
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/sinkq"
)

//go:embed sample.conf
var sample string

func init() { plugin.Register(Descriptor()) }

// Config holds the options of a GRAPHITE instance.
type Config struct {
	Host   string `ulogd:"host,mandatory"`
	Port   string `ulogd:"port"`
	Prefix string `ulogd:"prefix"`
	sinkq.Options
}

// defaultPort is Carbon's plaintext receiver (ulogd2 has no default).
const defaultPort = "2003"

// defaultConfig: the queue's defaults are the shared ones but for its
// bounds, 131072 objects or 8 MiB of lines (about 80000 objects).
func defaultConfig() *Config {
	q := sinkq.DefaultOptions()
	q.QueueRecords, q.QueueBytes = 1<<17, 8<<20
	return &Config{Port: defaultPort, Options: q}
}

// validate checks the options. An empty host passes unless explicit is
// true: the defaults (no host) give the keys for --info and the
// documentation; the config decoder requires the option and New, which
// --check also runs, refuses an empty value.
func (c *Config) validate(explicit bool) error {
	var errs []error
	switch h := strings.Trim(c.Host, "[]"); {
	case c.Host == "" && explicit:
		errs = append(errs, config.OptionErrorf("host", `host="": GRAPHITE needs the address or name of the Carbon server`))
	case !validPath(c.Host) || strings.Contains(h, "/"):
		errs = append(errs, config.OptionErrorf("host", "host=%q: not an address or host name", c.Host))
	case strings.Contains(h, ":"):
		if _, err := netip.ParseAddr(h); err != nil {
			errs = append(errs, config.OptionErrorf("host", "host=%q: not an IPv6 address: %v", c.Host, err))
		}
	}
	if p, err := strconv.Atoi(c.Port); err != nil || p < 1 || p > 65535 {
		errs = append(errs, config.OptionErrorf("port", "port=%q: not a TCP port number (1-65535)", c.Port))
	}
	if !validPath(c.Prefix) {
		errs = append(errs, config.OptionErrorf("prefix", "prefix=%q: whitespace or control characters would break the plaintext protocol's lines", c.Prefix))
	}
	return errors.Join(errs...)
}

// addr is the server's address for net.Dial.
func (c *Config) addr() string { return net.JoinHostPort(strings.Trim(c.Host, "[]"), c.Port) }

// Descriptor returns the GRAPHITE plugin descriptor.
func Descriptor() *plugin.Descriptor {
	return plugin.Define(plugin.Def[Config]{
		Name:      "GRAPHITE",
		Kind:      plugin.Sink,
		Summary:   "accounting records (NFACCT) to a Carbon server, Graphite's plaintext protocol over TCP",
		Input:     plugin.DTSum,
		Output:    plugin.DTSink,
		NewConfig: defaultConfig,
		Options: sinkq.AddOptionDocs(map[string]string{
			"host":   "the Carbon server: IPv4 or IPv6 address, or host name (required)",
			"port":   "its plaintext (line) receiver's TCP port",
			"prefix": "path in front of each metric, e.g. `netfilter.nfacct` (none: the object's name starts the path)",
		}),
		Sample: sample,
		Keys: func(c *Config) ([]keys.Spec, []keys.Spec, error) {
			return inputs, nil, errors.Join(c.validate(false), c.Options.Check())
		},
		Resources: func(c *Config) []string { return c.Options.Resources() },
		New:       newSink,
	})
}

// Input keys, ulogd2's (all mandatory).
const (
	inName = iota
	inPkts
	inBytes
	inTime
	numIn
)

var inputs = []keys.Spec{
	inName:  {Name: "sum.name", Type: keys.String},
	inPkts:  {Name: "sum.pkts", Type: keys.Uint64},
	inBytes: {Name: "sum.bytes", Type: keys.Uint64},
	inTime:  {Name: "oob.time.sec", Type: keys.Uint32},
}

// sink is one GRAPHITE instance.
type sink struct {
	in     []keys.Slot
	prefix string
	addr   string
	log    *slog.Logger
	now    func() time.Time // for records without a time
	buf    []byte           // the lines of the current record
	tun    tunables
	opts   sinkq.Options
	out    sender // made by Start
}

func newSink(env *plugin.Env, c *Config) (plugin.Instance, error) {
	if err := errors.Join(c.validate(true), c.Options.Check()); err != nil {
		return nil, err
	}
	if len(env.In) != numIn {
		return nil, fmt.Errorf("GRAPHITE: %d input slots for %d keys", len(env.In), numIn)
	}
	s := &sink{
		in:     env.In,
		prefix: c.Prefix,
		addr:   c.addr(),
		log:    env.Logger(),
		now:    time.Now,
		buf:    make([]byte, 0, 256),
		tun:    defaultTunables(),
		opts:   c.Options,
	}
	return s, nil
}

// Start connects to the server; a server that cannot be reached fails the
// start, as in ulogd2. Later losses of the connection are repaired by the
// writer.
func (s *sink) Start(ctx context.Context) error {
	if s.out == nil {
		out, err := newSender(s.addr, s.log, s.tun, &s.opts)
		if err != nil {
			return fmt.Errorf("GRAPHITE: %w", err)
		}
		s.out = out
	}
	if err := s.out.Start(ctx); err != nil {
		return fmt.Errorf("GRAPHITE: can't connect to %s: %w", s.addr, err)
	}
	return nil
}

// Stop sends what is queued (for a bounded time) and closes the
// connection; what is left is counted as dropped.
func (s *sink) Stop(ctx context.Context) error {
	if s.out == nil {
		return nil
	}
	return s.out.Stop(ctx)
}

// Interp queues the two lines of one object. The time is oob.time.sec
// when the record has a non-zero one (NFACCT with timestamp=1), else now.
func (s *sink) Interp(r *keys.Record) plugin.Verdict {
	if !r.Valid(s.in[inName]) {
		return plugin.Fail
	}
	ts := r.Uint(s.in[inTime])
	if ts == 0 {
		ts = uint64(s.now().Unix())
	}
	s.buf = appendLines(s.buf[:0], s.prefix, r.Bytes(s.in[inName]), r.Uint(s.in[inPkts]), r.Uint(s.in[inBytes]), ts)
	s.out.Push(s.buf)
	return plugin.Continue
}

// Dropped counts the objects whose lines could not be sent (two lines
// each): queue full, lost with a connection, left at stop.
func (s *sink) Dropped() uint64 {
	if s.out == nil {
		return 0
	}
	return s.out.Dropped()
}

// Written counts the objects whose lines the server took.
func (s *sink) Written() uint64 {
	if s.out == nil {
		return 0
	}
	return s.out.Written()
}
