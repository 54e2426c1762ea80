// Package pwsniff is the PWSNIFF filter: it picks the user name and the
// password out of FTP and POP3 login commands sent in clear text, and
// stops every other packet, so that a stack with PWSNIFF logs only
// password packets.
package pwsniff

import (
	"encoding/binary"

	"golang.org/x/sys/unix"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
)

// Input key positions.
const (
	inPkt    = iota // raw.pkt
	inPktLen        // raw.pktlen
	inFamily        // oob.family
)

// Output key positions.
const (
	outUser = iota // pwsniff.user
	outPass        // pwsniff.pass
)

var (
	inputs = []keys.Spec{
		{Name: "raw.pkt", Type: keys.Raw},
		{Name: "raw.pktlen", Type: keys.Uint32, Flags: keys.Optional},
		{Name: "oob.family", Type: keys.Uint8, Flags: keys.Optional},
	}
	outputs = []keys.Spec{
		{Name: "pwsniff.user", Type: keys.String},
		{Name: "pwsniff.pass", Type: keys.String},
	}
)

// Ports.
const (
	portFTP  = 21
	portPOP3 = 110
)

func init() { plugin.Register(Descriptor()) }

// Descriptor returns the PWSNIFF plugin's descriptor.
func Descriptor() *plugin.Descriptor {
	return plugin.Define(plugin.Def[plugin.NoConfig]{
		Name:    "PWSNIFF",
		Kind:    plugin.Filter,
		Summary: "extract FTP/POP3 USER and PASS arguments; stop every other packet",
		// ulogd2 declares raw in, packet out; PWSNIFF passes packets through
		// unchanged, so it may stand before or after BASE without a
		// type-mismatch warning.
		Input:  plugin.DTRaw | plugin.DTPacket,
		Output: plugin.DTRaw | plugin.DTPacket,
		Keys:   func(*plugin.NoConfig) ([]keys.Spec, []keys.Spec, error) { return inputs, outputs, nil },
		New: func(env *plugin.Env, _ *plugin.NoConfig) (plugin.Instance, error) {
			return &filter{in: env.In, out: env.Out}, nil
		},
	})
}

type filter struct {
	plugin.Stateless
	in, out []keys.Slot
}

// Interp finds the TCP payload of a packet to port 21 or 110 and looks for
// USER and PASS commands in it. The outputs alias the packet. A packet
// without such a command is stopped.
func (f *filter) Interp(r *keys.Record) plugin.Verdict {
	pkt := r.Bytes(f.in[inPkt])
	if r.Valid(f.in[inPktLen]) {
		if n := r.Uint(f.in[inPktLen]); n < uint64(len(pkt)) {
			pkt = pkt[:n]
		}
	}
	family := uint64(unix.AF_BRIDGE) // absent: the IP version decides
	if r.Valid(f.in[inFamily]) {
		family = r.Uint(f.in[inFamily])
	}
	payload, ok := tcpPayload(pkt, family)
	if !ok {
		return plugin.Stop
	}
	user, pass, ok := commands(payload)
	if !ok {
		return plugin.Stop
	}
	if user != nil {
		r.SetBytes(f.out[outUser], user)
	}
	if pass != nil {
		r.SetBytes(f.out[outPass], pass)
	}
	return plugin.Continue
}

// tcpPayload returns the TCP payload of an IPv4 or IPv6 packet sent to the
// FTP or POP3 port. It reads only within pkt. IPv4 fragments other than
// the first, and IPv6 packets with extension headers, are not decoded.
func tcpPayload(pkt []byte, family uint64) ([]byte, bool) {
	if len(pkt) < 1 {
		return nil, false
	}
	version := pkt[0] >> 4
	switch {
	case family == unix.AF_INET && version == 4, family == unix.AF_BRIDGE && version == 4:
		if len(pkt) < 20 {
			return nil, false
		}
		ihl := int(pkt[0]&0xf) * 4
		if ihl < 20 || len(pkt) < ihl || pkt[9] != unix.IPPROTO_TCP {
			return nil, false
		}
		if binary.BigEndian.Uint16(pkt[6:8])&0x1fff != 0 {
			return nil, false // not the first fragment: no TCP header
		}
		if tot := int(binary.BigEndian.Uint16(pkt[2:4])); tot >= ihl && tot < len(pkt) {
			pkt = pkt[:tot] // link-layer padding
		}
		pkt = pkt[ihl:]
	case family == unix.AF_INET6 && version == 6, family == unix.AF_BRIDGE && version == 6:
		if len(pkt) < 40 || pkt[6] != unix.IPPROTO_TCP {
			return nil, false
		}
		if pl := int(binary.BigEndian.Uint16(pkt[4:6])); pl != 0 && 40+pl < len(pkt) {
			pkt = pkt[:40+pl]
		}
		pkt = pkt[40:]
	default:
		return nil, false
	}
	if len(pkt) < 20 {
		return nil, false
	}
	doff := int(pkt[12]>>4) * 4
	if doff < 20 || len(pkt) < doff {
		return nil, false
	}
	switch binary.BigEndian.Uint16(pkt[2:4]) {
	case portFTP, portPOP3:
		return pkt[doff:], true
	}
	return nil, false
}

// commands scans the lines of payload for "USER arg" and "PASS arg"
// (command case-insensitive) and returns the first argument of each, up to
// the end of its line; ok is false when there is neither. A client may
// send both in one segment.
func commands(payload []byte) (user, pass []byte, ok bool) {
	for len(payload) > 0 {
		line := payload
		payload = nil
		for i, c := range line {
			if c == '\r' || c == '\n' {
				line, payload = line[:i], line[i+1:]
				break
			}
		}
		if len(line) < 5 || line[4] != ' ' {
			continue
		}
		switch {
		case user == nil && upperEq(line[:4], "USER"):
			user, ok = line[5:], true
		case pass == nil && upperEq(line[:4], "PASS"):
			pass, ok = line[5:], true
		}
	}
	return user, pass, ok
}

// upperEq reports whether b equals the upper-case ASCII word w, ignoring
// the case of b.
func upperEq(b []byte, w string) bool {
	if len(b) != len(w) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != w[i] {
			return false
		}
	}
	return true
}
