// Package json is the JSON sink: one JSON object per event, written to a
// file or sent to a TCP, UDP or Unix-socket peer, in the shape ulogd2's
// ulogd_output_JSON.so gives it (field order, CIM aliases, separators), with
// an ISO 8601 time stamp that always carries microseconds and a UTC offset.
//
// The record is append-encoded by hand: no reflection, no map and no
// allocation per event. The field layout is computed once, in New, from the
// upstream keys; Interp walks that precomputed slice, taking the record's
// validity bits a word at a time so that invalid keys cost nothing, and
// keeps the fields it wrote as a plan that the following records of the
// same shape replay.
//
// File mode writes through internal/fileout (buffered, group commit, reopen
// on SIGHUP). Socket modes put each formatted record in a bounded in-memory
// queue (internal/sinkq) drained by a writer goroutine, so a slow or absent
// peer never stalls the source: when the queue is full new records are
// dropped and counted.
package json

import (
	_ "embed"

	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/ulogd-go/ulogd/internal/config"
	"github.com/ulogd-go/ulogd/internal/fileout"
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/logging"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/sinkq"
)

// Config holds JSON's options (see the README).
type Config struct {
	File         string `ulogd:"file"`
	Sync         int    `ulogd:"sync"`
	Timestamp    int    `ulogd:"timestamp"`
	EventV1      int    `ulogd:"eventv1"`
	Device       string `ulogd:"device"`
	BooleanLabel int    `ulogd:"boolean_label"`
	Mode         string `ulogd:"mode"`
	Host         string `ulogd:"host"`
	Port         string `ulogd:"port"`
	Layout       string `ulogd:"layout"`
	// The socket modes' queue: queue_records, queue_bytes, overflow,
	// spool_dir, spool_size.
	sinkq.Options
}

func newConfig() *Config {
	return &Config{
		Layout:    "ulogd2",
		Options:   sinkq.DefaultOptions(),
		File:      "/var/log/ulogd.json",
		Timestamp: 1,
		Device:    "Netfilter",
		Mode:      "file",
		Host:      "127.0.0.1",
		Port:      "12345",
	}
}

// mode is where records go.
type mode uint8

const (
	modeFile mode = iota
	modeTCP
	modeUDP
	modeUnix
)

func (m mode) String() string {
	return [...]string{"file", "tcp", "udp", "unix"}[m]
}

func parseMode(s string) (mode, error) {
	switch strings.ToLower(s) {
	case "file":
		return modeFile, nil
	case "tcp":
		return modeTCP, nil
	case "udp":
		return modeUDP, nil
	case "unix":
		return modeUnix, nil
	}
	return 0, config.OptionErrorf("mode", "unknown mode '%s'", s)
}

//go:embed sample.conf
var sample string

func init() { plugin.Register(Descriptor()) }

// Descriptor returns the JSON plugin's descriptor.
func Descriptor() *plugin.Descriptor {
	return plugin.Define(plugin.Def[Config]{
		Name:      "JSON",
		Kind:      plugin.Sink,
		Summary:   "write every key of the event as one JSON object per line (file, TCP, UDP or Unix socket)",
		Input:     plugin.DTPacket | plugin.DTFlow | plugin.DTSum,
		Output:    plugin.DTSink,
		Wildcard:  true,
		NewConfig: newConfig,
		Options: sinkq.AddOptionDocs(map[string]string{
			"file":          "output file (`mode=file`) or socket path (`mode=unix`, at most 107 bytes)",
			"sync":          "file mode: 1 writes at the end of every batch of events",
			"timestamp":     "0 leaves the time stamp out",
			"eventv1":       "1: Logstash event v1, `\"@version\": 1` first and the time stamp named `@timestamp`",
			"device":        "value of `dvc` (always written; `device=\"\"` gives `\"dvc\": \"\"`)",
			"boolean_label": "1: `raw.label` becomes `\"action\": \"allowed\"`/`\"blocked\"`",
			"mode":          "`file`, `tcp`, `udp` or `unix`, in any case; anything else is a configuration error (`unknown mode 'X'`)",
			"host":          "peer for `tcp`/`udp`",
			"port":          "peer port for `tcp`/`udp`",
			"layout":        "field names: `ulogd2` (ulogd2's keys) or `ecs` (Elastic Common Schema, see below)",
		}),
		Sample: sample,
		Keys: func(c *Config) ([]keys.Spec, []keys.Spec, error) {
			if _, err := parseLayout(c.Layout); err != nil {
				return nil, nil, err
			}
			if m, err := parseMode(c.Mode); err == nil && m != modeFile {
				return nil, nil, c.Options.Check()
			}
			return nil, nil, nil
		},
		Resources: func(c *Config) []string {
			m, err := parseMode(c.Mode)
			if err == nil && m == modeFile {
				return fileout.Resources(c.File)
			}
			if err == nil {
				return c.Options.Resources()
			}
			return nil
		},
		New: newSink,
	})
}

// sink is one JSON instance.
type sink struct {
	cfg  *Config
	mode mode
	log  *slog.Logger
	lay  layout
	ecs  *ecsFields // layout=ecs: the computed fields
	clk  clock
	now  func() time.Time
	// clock stamps the records without a time of their own (flows).
	clock plugin.BatchClock

	// File mode.
	file fileout.Sink

	// Socket modes.
	scratch []byte // the record being formatted
	network string // "tcp", "udp", "unix"
	addr    string
	tun     tunables
	q       *sinkq.Queue  // records waiting for the peer
	w       *sinkq.Writer // the goroutine that sends them
}

func newSink(env *plugin.Env, cfg *Config) (plugin.Instance, error) {
	m, err := parseMode(cfg.Mode)
	if err != nil {
		return nil, err
	}
	s := &sink{cfg: cfg, mode: m, log: env.Log, now: time.Now, tun: defaultTunables()}
	s.clock.Now = func() time.Time { return s.now() }
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	switch m {
	case modeFile:
		if err := fileout.CheckPath(cfg.File); err != nil {
			return nil, config.AtOption("file", err)
		}
		s.file = fileout.NewSink(cfg.File, cfg.Sync != 0, s.log, fileout.Texts{
			Open:   "can't open JSON log file",
			Reopen: "can't reopen JSON log file",
			Notice: "JSON: reopening logfile",
		})
	case modeUnix:
		// sun_path holds 108 bytes including the terminating NUL.
		if cfg.File == "" || len(cfg.File) >= 108 {
			return nil, config.OptionErrorf("file", "unix socket path %q must be 1 to 107 bytes long", cfg.File)
		}
		s.network, s.addr = "unix", cfg.File
	case modeTCP, modeUDP:
		if cfg.Host == "" || cfg.Port == "" {
			return nil, config.OptionErrorf("mode", "mode %s needs a host and a port", m)
		}
		s.network = m.String()
		s.addr = joinHostPort(cfg.Host, cfg.Port)
	}
	s.lay = buildLayout(env.Upstream, cfg)
	if lay, err := parseLayout(cfg.Layout); err != nil {
		return nil, err
	} else if lay == layoutECS {
		s.ecs = newECSFields(env.Upstream)
	}
	s.clk.init(time.Local)
	s.scratch = make([]byte, 0, 4096)
	return s, nil
}

func joinHostPort(host, port string) string {
	if strings.IndexByte(host, ':') >= 0 && !strings.HasPrefix(host, "[") {
		return "[" + host + "]:" + port
	}
	return host + ":" + port
}

func (s *sink) Start(ctx context.Context) error {
	if s.mode == modeFile {
		return s.file.Start(ctx)
	}
	return s.startSocket(ctx)
}

func (s *sink) Stop(ctx context.Context) error {
	if s.mode == modeFile {
		return s.file.Stop(ctx)
	}
	return s.stopSocket(ctx)
}

// Interp formats one record and hands it to the file buffer or the queue.
func (s *sink) Interp(r *keys.Record) plugin.Verdict {
	if s.mode == modeFile {
		w := s.file.W
		if w == nil {
			return plugin.Fail
		}
		// A line that cannot be written yet stays buffered (or, past
		// the buffer's bound, is dropped, counted and logged).
		_ = w.Commit(s.encode(w.Buffer(), r))
		return plugin.Continue
	}
	if s.w == nil {
		return plugin.Fail
	}
	s.scratch = s.encode(s.scratch[:0], r)
	s.w.Push(s.scratch) // a drop is counted and logged there
	return plugin.Continue
}

// Flush is called at the end of each receive batch (and every second):
// the file's buffer is written, or the socket's writer woken for the
// batch's records.
func (s *sink) Flush() error {
	s.clock.Reset()
	if s.mode != modeFile {
		if s.w != nil {
			s.w.Flush()
		}
		return nil
	}
	return s.file.Flush()
}

// Reopen reopens the file (logrotate) or reconnects the socket on SIGHUP.
func (s *sink) Reopen() error {
	if s.mode != modeFile {
		s.log.Log(context.Background(), logging.LevelNotice, "JSON: reopening socket")
		if s.w != nil {
			s.w.Reconnect()
		}
		return nil
	}
	return s.file.Reopen()
}

// Dropped returns how many records were dropped: the socket queue was full,
// a record could never be sent, the kernel still held it when the
// connection died, or it was left at Stop; or the file could not be written
// (plugin.Dropper).
func (s *sink) Dropped() uint64 {
	if s.q != nil {
		return s.q.Dropped()
	}
	return s.file.Dropped()
}

// Written returns how many records reached the file or the peer
// (plugin.WriteCounter).
func (s *sink) Written() uint64 {
	if s.q != nil {
		return s.q.Written()
	}
	return s.file.Written()
}

// Metrics reports the socket queue and reconnections (plugin.Metricer);
// nothing in file mode.
func (s *sink) Metrics() []plugin.Metric {
	return s.w.Metrics()
}

// Check reports the peer down while the socket is not connected
// (plugin.Checker); file mode is always up.
func (s *sink) Check() error {
	return s.w.Check()
}
