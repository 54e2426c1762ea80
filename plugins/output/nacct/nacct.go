// Package nacct is the NACCT sink: one tab-separated accounting line per
// conntrack flow (end time, protocol, addresses, ports or ICMP type/code,
// reply packets and bytes), in the format of the old nacct tool.
package nacct

import (
	_ "embed"

	"strconv"

	"golang.org/x/sys/unix"

	"github.com/ulogd-go/ulogd/internal/fileout"
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
)

// Config holds NACCT's options.
type Config struct {
	File string `ulogd:"file"`
	Sync int    `ulogd:"sync"`
}

// Input key indexes.
const (
	inSaddr = iota
	inDaddr
	inProto
	inSport
	inDport
	inPktlen
	inPktcount
	inICMPCode
	inICMPType
	inStart
	inEnd
)

// inputs are ulogd2's, in its order and with its types (all mandatory).
var inputs = []keys.Spec{
	inSaddr:    {Name: "orig.ip.saddr.str", Type: keys.String},
	inDaddr:    {Name: "orig.ip.daddr.str", Type: keys.String},
	inProto:    {Name: "orig.ip.protocol", Type: keys.Uint8},
	inSport:    {Name: "orig.l4.sport", Type: keys.Uint16},
	inDport:    {Name: "orig.l4.dport", Type: keys.Uint16},
	inPktlen:   {Name: "reply.raw.pktlen", Type: keys.Uint64},
	inPktcount: {Name: "reply.raw.pktcount", Type: keys.Uint64},
	inICMPCode: {Name: "icmp.code", Type: keys.Uint8},
	inICMPType: {Name: "icmp.type", Type: keys.Uint8},
	inStart:    {Name: "flow.start.sec", Type: keys.Uint32},
	inEnd:      {Name: "flow.end.sec", Type: keys.Uint32},
}

//go:embed sample.conf
var sample string

func init() { plugin.Register(Descriptor()) }

// Descriptor returns the NACCT plugin's descriptor.
func Descriptor() *plugin.Descriptor {
	return plugin.Define(plugin.Def[Config]{
		Name:      "NACCT",
		Kind:      plugin.Sink,
		Summary:   "write one tab-separated accounting line per flow (nacct format)",
		Input:     plugin.DTFlow,
		Output:    plugin.DTSink,
		NewConfig: func() *Config { return &Config{File: "/var/log/ulogd_nacct.log"} },
		Options: map[string]string{
			"file": "the file the accounting lines go to, opened for appending (created with mode 0640)",
			"sync": "1: write at the end of every batch of events",
		},
		Sample:    sample,
		Keys:      func(*Config) ([]keys.Spec, []keys.Spec, error) { return inputs, nil, nil },
		Resources: func(cfg *Config) []string { return fileout.Resources(cfg.File) },
		New: func(env *plugin.Env, cfg *Config) (plugin.Instance, error) {
			if err := fileout.CheckPath(cfg.File); err != nil {
				return nil, err
			}
			s := &sink{Sink: fileout.NewSink(cfg.File, cfg.Sync != 0, env.Log, fileout.Texts{
				Open:   cfg.File,
				Notice: "NACCT: reopening logfile",
			})}
			copy(s.in[:], env.In)
			return s, nil
		},
	})
}

// sink is one NACCT instance; fileout.Sink gives it Start, Stop, Flush
// and Reopen. Unlike ulogd2, which closes the file first on SIGHUP and
// crashes on the next event when the open fails (docs/compat.md T4), a failed reopen
// keeps the old file.
type sink struct {
	fileout.Sink
	in [inEnd + 1]keys.Slot
}

// Interp appends
//
//	end  proto  saddr  sport|icmp.type  daddr  dport|icmp.code  reply.pkts  reply.bytes
//
// separated by tabs. An invalid number prints 0, an invalid address
// nothing.
func (s *sink) Interp(r *keys.Record) plugin.Verdict {
	proto := r.Uint(s.in[inProto])
	sport, dport := s.in[inSport], s.in[inDport]
	if proto == unix.IPPROTO_ICMP {
		sport, dport = s.in[inICMPType], s.in[inICMPCode]
	}
	b := s.W.Buffer()
	b = strconv.AppendUint(b, r.Uint(s.in[inEnd]), 10)
	b = append(b, '\t')
	b = strconv.AppendUint(b, proto, 10)
	b = append(b, '\t')
	b = append(b, r.Bytes(s.in[inSaddr])...)
	b = append(b, '\t')
	b = strconv.AppendUint(b, r.Uint(sport), 10)
	b = append(b, '\t')
	b = append(b, r.Bytes(s.in[inDaddr])...)
	b = append(b, '\t')
	b = strconv.AppendUint(b, r.Uint(dport), 10)
	b = append(b, '\t')
	b = strconv.AppendUint(b, r.Uint(s.in[inPktcount]), 10)
	b = append(b, '\t')
	b = strconv.AppendUint(b, r.Uint(s.in[inPktlen]), 10)
	b = append(b, '\n')
	if err := s.W.Commit(b); err != nil {
		// The line stays buffered for the next write; the engine counts
		// and reports the failure.
		return plugin.Fail
	}
	return plugin.Continue
}
