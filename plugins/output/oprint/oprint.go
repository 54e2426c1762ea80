// Package oprint is the OPRINT sink: for each event, a boundary line and
// then one "name=value" line per valid upstream key.
package oprint

import (
	_ "embed"

	"strconv"

	"github.com/ulogd-go/ulogd/internal/fileout"
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
)

// Config holds OPRINT's options.
type Config struct {
	File string `ulogd:"file"`
	Sync int    `ulogd:"sync"`
}

const boundary = "===>PACKET BOUNDARY\n"

//go:embed sample.conf
var sample string

func init() { plugin.Register(Descriptor()) }

// Descriptor returns the OPRINT plugin's descriptor.
func Descriptor() *plugin.Descriptor {
	return plugin.Define(plugin.Def[Config]{
		Name:      "OPRINT",
		Kind:      plugin.Sink,
		Summary:   "write every upstream key as a name=value line, one block per event",
		Input:     plugin.DTPacket | plugin.DTFlow,
		Output:    plugin.DTSink,
		Wildcard:  true,
		NewConfig: func() *Config { return &Config{File: "/var/log/ulogd_oprint.log"} },
		Options: map[string]string{
			"file": "the file the key blocks go to, opened for appending (created with mode 0640)",
			"sync": "1: write at the end of every batch of events",
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

// sink is one OPRINT instance; fileout.Sink gives it Start, Stop, Flush
// and Reopen (a failed reopen keeps the old file).
type sink struct {
	fileout.Sink
	fields []keys.Field
}

func newSink(env *plugin.Env, cfg *Config) *sink {
	s := &sink{Sink: fileout.NewSink(cfg.File, cfg.Sync != 0, env.Log, fileout.Texts{
		Open:   "can't open PKTLOG",
		Notice: "OPRINT: reopening logfile",
	})}
	s.fields = keys.Fields(env.Upstream, "=")
	return s
}

// Interp appends the boundary line and one line per valid key, in
// upstream order, duplicates included.
func (s *sink) Interp(r *keys.Record) plugin.Verdict {
	b := append(s.W.Buffer(), boundary...)
	for i := range s.fields {
		f := &s.fields[i]
		if !r.Valid(f.Slot) {
			continue
		}
		b = append(b, f.Prefix...)
		b = appendValue(b, r, f)
		b = append(b, '\n')
	}
	if err := s.W.Commit(b); err != nil {
		// The lines stay buffered for the next write; the engine counts
		// and reports the failure.
		return plugin.Fail
	}
	return plugin.Continue
}

// appendValue renders a value as ulogd2's OPRINT does, except addresses:
// ulogd2 2.0.8 prints an IPv4 address with its bytes reversed (docs/compat.md T1) and the
// first four bytes of an IPv6 address (docs/compat.md T2); here both print correctly.
func appendValue(b []byte, r *keys.Record, f *keys.Field) []byte {
	switch f.Type {
	case keys.String:
		return append(b, r.Bytes(f.Slot)...)
	case keys.Bool:
		return strconv.AppendUint(b, r.Uint(f.Slot), 10)
	case keys.Int8:
		return strconv.AppendInt(b, int64(int8(r.Uint(f.Slot))), 10)
	case keys.Int16:
		return strconv.AppendInt(b, int64(int16(r.Uint(f.Slot))), 10)
	case keys.Int32:
		return strconv.AppendInt(b, int64(int32(r.Uint(f.Slot))), 10)
	case keys.Uint8, keys.Uint16, keys.Uint32, keys.Uint64:
		return strconv.AppendUint(b, r.Uint(f.Slot), 10)
	case keys.IPAddr:
		return keys.AppendIP(b, r.Bytes(f.Slot))
	case keys.None:
		return append(b, "<none>"...)
	}
	// RAW, RAWSTR, INT64, IP6ADDR: ulogd2 prints this literal.
	return append(b, "default"...)
}
