// Package hwhdr is the HWHDR filter: it turns the hardware (link-layer)
// header of a packet into text: source and destination MAC addresses and
// the whole header as colon-separated hex, and takes the ethertype from an
// Ethernet header.
package hwhdr

import (
	"encoding/binary"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
)

// Input key positions.
const (
	inType     = iota // raw.type
	inProtocol        // oob.protocol
	inMac             // raw.mac
	inMacLen          // raw.mac_len
	inSaddr           // raw.mac.saddr
	inAddrLen         // raw.mac.addrlen
)

// Output key positions.
const (
	outType     = iota // raw.type
	outProtocol        // oob.protocol
	outSaddr           // mac.saddr.str
	outDaddr           // mac.daddr.str
	outMac             // mac.str
)

var (
	inputs = []keys.Spec{
		{Name: "raw.type", Type: keys.Uint16, Flags: keys.Optional},
		{Name: "oob.protocol", Type: keys.Uint16},
		{Name: "raw.mac", Type: keys.Raw, Flags: keys.Optional},
		{Name: "raw.mac_len", Type: keys.Uint16, Flags: keys.Optional},
		{Name: "raw.mac.saddr", Type: keys.Raw, Flags: keys.Optional},
		{Name: "raw.mac.addrlen", Type: keys.Uint16, Flags: keys.Optional},
	}
	outputs = []keys.Spec{
		{Name: "raw.type", Type: keys.Uint16},
		{Name: "oob.protocol", Type: keys.Uint16},
		{Name: "mac.saddr.str", Type: keys.String},
		{Name: "mac.daddr.str", Type: keys.String},
		{Name: "mac.str", Type: keys.String},
	}
)

// Link types (ARPHRD_*) and the Ethernet header layout.
const (
	arphrdEther = 1      // ARPHRD_ETHER
	arphrdVoid  = 0xffff // ARPHRD_VOID
	ethHLen     = 14     // ETH_HLEN
	ethALen     = 6      // ETH_ALEN

	// maxHex is the longest header (or address) ulogd2 converts: its text
	// buffer holds 42 bytes as "xx:"; a longer one is an error there.
	maxHex = 42
)

func init() { plugin.Register(Descriptor()) }

// Descriptor returns the HWHDR plugin's descriptor.
func Descriptor() *plugin.Descriptor {
	return plugin.Define(plugin.Def[plugin.NoConfig]{
		Name:    "HWHDR",
		Kind:    plugin.Filter,
		Summary: "convert the hardware header to MAC address strings",
		Input:   plugin.DTPacket,
		Output:  plugin.DTPacket,
		Keys:    func(*plugin.NoConfig) ([]keys.Spec, []keys.Spec, error) { return inputs, outputs, nil },
		New: func(env *plugin.Env, _ *plugin.NoConfig) (plugin.Instance, error) {
			return &filter{in: env.In, out: env.Out}, nil
		},
	})
}

type filter struct {
	plugin.Stateless
	in, out []keys.Slot
}

// Interp follows ulogd2's steps: copy oob.protocol; format the hardware
// source address attribute if there is one; then, with a hardware header,
// decide the link type, decode an Ethernet header and format the whole
// header. A header or address too long to format, a missing length, or an
// Ethernet header shorter than 14 bytes is an error for the event.
func (f *filter) Interp(r *keys.Record) plugin.Verdict {
	in, out := f.in, f.out
	if r.Valid(in[inProtocol]) {
		r.SetUint(out[outProtocol], r.Uint(in[inProtocol]))
	}
	if r.Valid(in[inSaddr]) {
		if !r.Valid(in[inAddrLen]) {
			return plugin.Fail
		}
		b := clip(r.Bytes(in[inSaddr]), r.Uint(in[inAddrLen]))
		if !setHex(r, out[outSaddr], b) {
			return plugin.Fail
		}
		r.SetUint(out[outType], arphrdVoid)
	}
	if !r.Valid(in[inMac]) {
		return plugin.Continue
	}
	if !r.Valid(in[inMacLen]) {
		return plugin.Fail
	}
	macLen := r.Uint(in[inMacLen])
	hdr := clip(r.Bytes(in[inMac]), macLen)
	var typ uint64
	switch {
	case r.Valid(in[inType]):
		typ = r.Uint(in[inType]) // NFLOG: the device's link type
	case macLen == ethHLen:
		typ = arphrdEther // no type (ULOG): a 14-byte header is Ethernet
	default:
		typ = arphrdVoid
	}
	r.SetUint(out[outType], typ)
	if typ == arphrdEther {
		if len(hdr) < ethHLen {
			return plugin.Fail
		}
		if !r.Valid(out[outSaddr]) {
			setHex(r, out[outSaddr], hdr[ethALen:2*ethALen])
		}
		setHex(r, out[outDaddr], hdr[:ethALen])
		r.SetUint(out[outProtocol], uint64(binary.BigEndian.Uint16(hdr[2*ethALen:ethHLen])))
	}
	if !setHex(r, out[outMac], hdr) {
		return plugin.Fail
	}
	return plugin.Continue
}

// clip returns the first n bytes of b, or all of b when it is shorter: a
// length key larger than the data it describes never reads past it.
func clip(b []byte, n uint64) []byte {
	if n < uint64(len(b)) {
		return b[:n]
	}
	return b
}

const hexDigits = "0123456789abcdef"

// setHex stores b as lowercase hex bytes joined by ':' in slot s. It
// returns false, storing nothing, when b is longer than ulogd2 formats.
func setHex(r *keys.Record, s keys.Slot, b []byte) bool {
	if len(b) > maxHex {
		return false
	}
	a := r.Arena()
	n := len(a)
	for i, c := range b {
		if i > 0 {
			a = append(a, ':')
		}
		a = append(a, hexDigits[c>>4], hexDigits[c&0xf])
	}
	r.SetBytes(s, r.Commit(a, n))
	return true
}
