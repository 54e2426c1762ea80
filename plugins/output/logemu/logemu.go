// Package logemu is the LOGEMU sink: it writes the "print" key of each
// event to a file, prefixed like a syslog line ("Nov 25 18:13:31 host "),
// emulating the kernel's LOG target in a file of its own.
package logemu

import (
	_ "embed"

	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ulogd-go/ulogd/internal/fileout"
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
)

// Config holds LOGEMU's options.
type Config struct {
	File string `ulogd:"file"`
	Sync int    `ulogd:"sync"`
}

var inputs = []keys.Spec{
	{Name: "print", Type: keys.String},
	{Name: "oob.time.sec", Type: keys.Uint32, Flags: keys.Optional},
}

//go:embed sample.conf
var sample string

func init() { plugin.Register(Descriptor()) }

// Descriptor returns the LOGEMU plugin's descriptor.
func Descriptor() *plugin.Descriptor {
	return plugin.Define(plugin.Def[Config]{
		Name:      "LOGEMU",
		Kind:      plugin.Sink,
		Summary:   "write the print key to a file, with a syslog-like prefix",
		Input:     plugin.DTPacket | plugin.DTFlow,
		Output:    plugin.DTSink,
		NewConfig: func() *Config { return &Config{File: "/var/log/ulogd_syslogemu.log"} },
		Options: map[string]string{
			"file": "the file the lines go to, opened for appending (created with mode 0640)",
			"sync": "1: write at the end of every batch of events",
		},
		Sample:    sample,
		Keys:      func(*Config) ([]keys.Spec, []keys.Spec, error) { return inputs, nil, nil },
		Resources: func(cfg *Config) []string { return fileout.Resources(cfg.File) },
		New: func(env *plugin.Env, cfg *Config) (plugin.Instance, error) {
			if err := fileout.CheckPath(cfg.File); err != nil {
				return nil, err
			}
			return &sink{
				Sink: fileout.NewSink(cfg.File, cfg.Sync != 0, env.Log, fileout.Texts{
					Open:   "can't open syslogemu",
					Reopen: "can't reopen syslogemu",
					Notice: "syslogemu: reopening logfile",
				}),
				print: env.In[0], sec: env.In[1],
			}, nil
		},
	})
}

// sink is one LOGEMU instance; fileout.Sink gives it Stop, Flush and
// Reopen.
type sink struct {
	fileout.Sink
	print, sec keys.Slot
	clock      plugin.BatchClock // for records without oob.time.sec (flows)

	host string

	// The prefix "Mon dd hh:mm:ss host " is formatted once per second.
	prefixSec int64
	prefix    []byte
}

func (s *sink) Start(ctx context.Context) error {
	host, err := os.Hostname()
	if err != nil {
		return fmt.Errorf("gethostname: %w", err)
	}
	s.host, _, _ = strings.Cut(host, ".")
	if err := s.Sink.Start(ctx); err != nil {
		return err
	}
	s.prefixSec = -1
	return nil
}

// Flush writes the batch (sync=1) and lets the next batch read the clock.
func (s *sink) Flush() error {
	s.clock.Reset()
	return s.Sink.Flush()
}

// Interp appends one line. The time is the packet's (oob.time.sec) when the
// source gives one, else now, in local time.
func (s *sink) Interp(r *keys.Record) plugin.Verdict {
	if !r.Valid(s.print) {
		return plugin.Continue
	}
	sec := int64(r.Uint(s.sec))
	if !r.Valid(s.sec) {
		sec = s.clock.Time().Unix()
	}
	if sec != s.prefixSec {
		s.prefixSec = sec
		p := time.Unix(sec, 0).AppendFormat(s.prefix[:0], time.Stamp)
		p = append(p, ' ')
		p = append(p, s.host...)
		s.prefix = append(p, ' ')
	}
	b := s.W.Buffer()
	b = append(b, s.prefix...)
	b = append(b, r.Bytes(s.print)...)
	// A line that cannot be written yet stays buffered (or, past the
	// buffer's bound, is dropped, counted and logged): the walk went well.
	_ = s.W.Commit(b)
	return plugin.Continue
}
