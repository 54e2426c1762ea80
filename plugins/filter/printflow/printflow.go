// Package printflow is the PRINTFLOW filter: it formats a conntrack event
// as one text line in ulogd2's format, for LOGEMU or SYSLOG.
//
//	[DESTROY] ORIG: SRC=10.0.0.1 DST=10.0.0.2 PROTO=TCP SPT=48142 DPT=5001 PKTS=5 BYTES=274 , REPLY: SRC=... \n
//
// One deliberate difference from ulogd2: ICMP type and code are printed
// under the right labels (ulogd2 swaps them, see docs/compat.md).
package printflow

import (
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
)

// Input key positions, in ulogd2's declaration order.
const (
	origSaddr = iota
	origDaddr
	origProto
	origSport
	origDport
	origBytes
	origPkts
	replySaddr
	replyDaddr
	replyProto
	replySport
	replyDport
	replyBytes
	replyPkts
	icmpCode
	icmpType
	ctEvent
)

var inputs = []keys.Spec{
	{Name: "orig.ip.saddr.str", Type: keys.String},
	{Name: "orig.ip.daddr.str", Type: keys.String},
	{Name: "orig.ip.protocol", Type: keys.Uint8},
	{Name: "orig.l4.sport", Type: keys.Uint16},
	{Name: "orig.l4.dport", Type: keys.Uint16},
	{Name: "orig.raw.pktlen", Type: keys.Uint64},
	{Name: "orig.raw.pktcount", Type: keys.Uint64},
	{Name: "reply.ip.saddr.str", Type: keys.String},
	{Name: "reply.ip.daddr.str", Type: keys.String},
	{Name: "reply.ip.protocol", Type: keys.Uint8},
	{Name: "reply.l4.sport", Type: keys.Uint16},
	{Name: "reply.l4.dport", Type: keys.Uint16},
	{Name: "reply.raw.pktlen", Type: keys.Uint64},
	{Name: "reply.raw.pktcount", Type: keys.Uint64},
	{Name: "icmp.code", Type: keys.Uint8},
	{Name: "icmp.type", Type: keys.Uint8},
	{Name: "ct.event", Type: keys.Uint32},
}

var outputs = []keys.Spec{{Name: "print", Type: keys.String}}

func init() { plugin.Register(Descriptor()) }

// Descriptor returns the PRINTFLOW plugin's descriptor.
func Descriptor() *plugin.Descriptor {
	return plugin.Define(plugin.Def[plugin.NoConfig]{
		Name:    "PRINTFLOW",
		Kind:    plugin.Filter,
		Summary: "format a conntrack event as a text line",
		Input:   plugin.DTFlow,
		Output:  plugin.DTFlow,
		Keys:    func(*plugin.NoConfig) ([]keys.Spec, []keys.Spec, error) { return inputs, outputs, nil },
		New: func(env *plugin.Env, _ *plugin.NoConfig) (plugin.Instance, error) {
			return &filter{in: env.In, out: env.Out[0]}, nil
		},
	})
}

type filter struct {
	plugin.Stateless
	in  []keys.Slot
	out keys.Slot
}

func (f *filter) Interp(r *keys.Record) plugin.Verdict {
	a := r.Arena()
	start := len(a)
	if r.Valid(f.in[ctEvent]) {
		switch r.Uint(f.in[ctEvent]) {
		case 1:
			a = append(a, "[NEW] "...)
		case 2:
			a = append(a, "[UPDATE] "...)
		case 4:
			a = append(a, "[DESTROY] "...)
		}
	}
	a = append(a, "ORIG: "...)
	a = f.side(a, r, origSaddr)
	a = append(a, ", REPLY: "...)
	a = f.side(a, r, replySaddr)
	a = append(a, '\n')
	r.SetBytes(f.out, r.Commit(a, start))
	return plugin.Continue
}

// side formats one direction; base is origSaddr or replySaddr, and the
// other keys of that direction follow at fixed offsets.
func (f *filter) side(a []byte, r *keys.Record, base int) []byte {
	if s := f.in[base+0]; r.Valid(s) {
		a = append(append(append(a, "SRC="...), r.Bytes(s)...), ' ')
	}
	if s := f.in[base+1]; r.Valid(s) {
		a = append(append(append(a, "DST="...), r.Bytes(s)...), ' ')
	}
	if s := f.in[base+2]; r.Valid(s) {
		switch p := r.Uint(s); p {
		case unix.IPPROTO_TCP, unix.IPPROTO_UDP:
			if p == unix.IPPROTO_TCP {
				a = append(a, "PROTO=TCP "...)
			} else {
				a = append(a, "PROTO=UDP "...)
			}
			a = field(a, r, "SPT=", f.in[base+3])
			a = field(a, r, "DPT=", f.in[base+4])
		case unix.IPPROTO_ICMP:
			a = append(a, "PROTO=ICMP "...)
			a = field(a, r, "TYPE=", f.in[icmpType])
			a = field(a, r, "CODE=", f.in[icmpCode])
		case unix.IPPROTO_ESP:
			a = append(a, "PROTO=ESP "...)
		case unix.IPPROTO_AH:
			a = append(a, "PROTO=AH "...)
		default:
			a = appendNum(append(a, "PROTO="...), p)
		}
	}
	a = field(a, r, "PKTS=", f.in[base+6])
	a = field(a, r, "BYTES=", f.in[base+5])
	return a
}

// field appends "LABEL<n> " when the slot is valid.
func field(a []byte, r *keys.Record, label string, s keys.Slot) []byte {
	if !r.Valid(s) {
		return a
	}
	return appendNum(append(a, label...), r.Uint(s))
}

// digits2 is "00" to "99".
const digits2 = "00010203040506070809" +
	"10111213141516171819" +
	"20212223242526272829" +
	"30313233343536373839" +
	"40414243444546474849" +
	"50515253545556575859" +
	"60616263646566676869" +
	"70717273747576777879" +
	"80818283848586878889" +
	"90919293949596979899"

// appendNum appends v in decimal and a space, as strconv.AppendUint and
// append(a, ' ') do. Numbers of up to five digits (ports, most
// counters) are appended byte by byte, without a copy.
func appendNum(a []byte, v uint64) []byte {
	switch {
	case v < 10:
		return append(a, byte('0'+v), ' ')
	case v < 100:
		return append(a, digits2[v*2], digits2[v*2+1], ' ')
	case v < 1000:
		r := v % 100 * 2
		return append(a, byte('0'+v/100), digits2[r], digits2[r+1], ' ')
	case v < 10000:
		q, r := v/100*2, v%100*2
		return append(a, digits2[q], digits2[q+1], digits2[r], digits2[r+1], ' ')
	case v < 100000:
		q, r := v/100%100*2, v%100*2
		return append(a, byte('0'+v/10000), digits2[q], digits2[q+1], digits2[r], digits2[r+1], ' ')
	}
	return append(strconv.AppendUint(a, v, 10), ' ')
}
