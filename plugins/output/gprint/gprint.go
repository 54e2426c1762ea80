// Package gprint is the GPRINT sink: one line per event in a file, with
// every valid upstream key of a printable type as "name=value,".
package gprint

import (
	_ "embed"

	"time"

	"github.com/ulogd-go/ulogd/internal/fileout"
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
)

// Config holds GPRINT's options.
type Config struct {
	File      string `ulogd:"file"`
	Sync      int    `ulogd:"sync"`
	Timestamp int    `ulogd:"timestamp"`
}

//go:embed sample.conf
var sample string

func init() { plugin.Register(Descriptor()) }

// Descriptor returns the GPRINT plugin's descriptor.
func Descriptor() *plugin.Descriptor {
	return plugin.Define(plugin.Def[Config]{
		Name:      "GPRINT",
		Kind:      plugin.Sink,
		Summary:   "write every upstream key as name=value, one comma-separated line per event",
		Input:     plugin.DTRaw | plugin.DTPacket | plugin.DTFlow | plugin.DTSum,
		Output:    plugin.DTSink,
		Wildcard:  true,
		NewConfig: func() *Config { return &Config{File: "/var/log/ulogd_gprint.log"} },
		Options: map[string]string{
			"file":      "output file, opened for appending (created with mode 0640)",
			"sync":      "1: write at the end of every batch of events",
			"timestamp": "1: start each line with `timestamp=YYYY/MM/DD-HH:MM:SS,`",
		},
		Sample:    sample,
		Resources: func(cfg *Config) []string { return fileout.Resources(cfg.File) },
		New: func(env *plugin.Env, cfg *Config) (plugin.Instance, error) {
			if err := fileout.CheckPath(cfg.File); err != nil {
				return nil, err
			}
			return newSink(env, cfg), nil
		},
	})
}

// sink is one GPRINT instance; fileout.Sink gives it Start, Stop, Flush
// and Reopen (a failed reopen keeps the old file).
type sink struct {
	fileout.Sink
	cfg    *Config
	fields []keys.Field
	now    func() time.Time

	// "timestamp=YYYY/MM/DD-HH:MM:SS," is formatted once per second.
	stampSec int64
	stamp    []byte
}

func newSink(env *plugin.Env, cfg *Config) *sink {
	s := &sink{
		Sink: fileout.NewSink(cfg.File, cfg.Sync != 0, env.Log, fileout.Texts{
			Open:   "can't open GPRINT log file",
			Notice: "GPRINT: reopening logfile",
		}),
		cfg: cfg, now: time.Now, stampSec: -1,
	}
	for _, f := range keys.Fields(env.Upstream, "=") {
		if printable(f.Type) { // the others are never printed: not looked at per event
			s.fields = append(s.fields, f)
		}
	}
	return s
}

// printable reports whether GPRINT prints keys of type t. As in ulogd2,
// RAW, RAWSTR, INT64, IP6ADDR and NONE are skipped.
func printable(t keys.Type) bool {
	switch t {
	case keys.Bool, keys.Int8, keys.Int16, keys.Int32,
		keys.Uint8, keys.Uint16, keys.Uint32, keys.Uint64,
		keys.String, keys.IPAddr:
		return true
	}
	return false
}

// Interp appends one line: the optional time stamp, then "name=value," for
// each valid key; the last comma becomes the newline.
func (s *sink) Interp(r *keys.Record) plugin.Verdict {
	b := s.W.Buffer()
	start := len(b)
	if s.cfg.Timestamp != 0 {
		now := s.now()
		if sec := now.Unix(); sec != s.stampSec {
			s.stampSec = sec
			p := append(s.stamp[:0], "timestamp="...)
			p = now.AppendFormat(p, "2006/01/02-15:04:05")
			s.stamp = append(p, ',')
		}
		b = append(b, s.stamp...)
	}
	for i := range s.fields {
		f := &s.fields[i]
		if !r.Valid(f.Slot) {
			continue
		}
		b = append(b, f.Prefix...)
		// The record's text form: IPv4 dotted quad, IPv6 in full (ulogd2
		// 2.0.8 prints the first four bytes of an IPv6 address, docs/compat.md T2).
		b, _ = r.AppendValue(b, f.Slot)
		b = append(b, ',')
	}
	if len(b) == start {
		// Nothing to print (ulogd2 writes before its buffer here).
		return plugin.Continue
	}
	b[len(b)-1] = '\n'
	if err := s.W.Commit(b); err != nil {
		// The line stays buffered for the next write; the engine counts
		// and reports the failure.
		return plugin.Fail
	}
	return plugin.Continue
}
