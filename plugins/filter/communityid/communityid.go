// Package communityid is the COMMUNITYID filter: it computes the
// Community ID flow hash (version 1) of a conntrack flow or of a packet,
// the identifier Zeek, Suricata and most SIEMs use to join the records of
// one flow across tools.
package communityid

import (
	"bytes"
	"crypto/sha1"
	_ "embed"
	"encoding/base64"
	"encoding/binary"
	"fmt"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
)

// Config holds COMMUNITYID's options.
type Config struct {
	Seed int `ulogd:"seed"`
}

// Input key positions.
const (
	inOrigSaddr = iota
	inOrigDaddr
	inOrigProto
	inOrigSport
	inOrigDport
	inSaddr
	inDaddr
	inProto
	inTCPSport
	inTCPDport
	inUDPSport
	inUDPDport
	inSCTPSport
	inSCTPDport
	inICMPType
	inICMPCode
	inICMPv6Type
	inICMPv6Code
	numInputs
)

var inputs = []keys.Spec{
	{Name: "orig.ip.saddr", Type: keys.IPAddr, Flags: keys.Optional},
	{Name: "orig.ip.daddr", Type: keys.IPAddr, Flags: keys.Optional},
	{Name: "orig.ip.protocol", Type: keys.Uint8, Flags: keys.Optional},
	{Name: "orig.l4.sport", Type: keys.Uint16, Flags: keys.Optional},
	{Name: "orig.l4.dport", Type: keys.Uint16, Flags: keys.Optional},
	{Name: "ip.saddr", Type: keys.IPAddr, Flags: keys.Optional},
	{Name: "ip.daddr", Type: keys.IPAddr, Flags: keys.Optional},
	{Name: "ip.protocol", Type: keys.Uint8, Flags: keys.Optional},
	{Name: "tcp.sport", Type: keys.Uint16, Flags: keys.Optional},
	{Name: "tcp.dport", Type: keys.Uint16, Flags: keys.Optional},
	{Name: "udp.sport", Type: keys.Uint16, Flags: keys.Optional},
	{Name: "udp.dport", Type: keys.Uint16, Flags: keys.Optional},
	{Name: "sctp.sport", Type: keys.Uint16, Flags: keys.Optional},
	{Name: "sctp.dport", Type: keys.Uint16, Flags: keys.Optional},
	{Name: "icmp.type", Type: keys.Uint8, Flags: keys.Optional},
	{Name: "icmp.code", Type: keys.Uint8, Flags: keys.Optional},
	{Name: "icmpv6.type", Type: keys.Uint8, Flags: keys.Optional},
	{Name: "icmpv6.code", Type: keys.Uint8, Flags: keys.Optional},
}

var outputs = []keys.Spec{
	{Name: "flow.community_id", Type: keys.String},
}

//go:embed sample.conf
var sample string

func init() { plugin.Register(Descriptor()) }

// Descriptor returns the COMMUNITYID plugin's descriptor.
func Descriptor() *plugin.Descriptor {
	return plugin.Define(plugin.Def[Config]{
		Name:      "COMMUNITYID",
		Kind:      plugin.Filter,
		Summary:   "add the Community ID flow hash (v1) of a flow or packet as flow.community_id",
		Input:     plugin.DTPacket | plugin.DTFlow,
		Output:    plugin.DTPacket | plugin.DTFlow,
		NewConfig: func() *Config { return &Config{} },
		Options: map[string]string{
			"seed": "the hash's seed, 0 to 65535 (the same on every sensor whose IDs are compared)",
		},
		Sample: sample,
		Keys: func(c *Config) ([]keys.Spec, []keys.Spec, error) {
			if c.Seed < 0 || c.Seed > 0xffff {
				return nil, nil, fmt.Errorf("seed %d out of range 0..65535", c.Seed)
			}
			return inputs, outputs, nil
		},
		New: func(env *plugin.Env, cfg *Config) (plugin.Instance, error) {
			f := &filter{out: env.Out[0]}
			copy(f.in[:], env.In)
			f.seed = uint16(cfg.Seed)
			return f, nil
		},
	})
}

type filter struct {
	plugin.Stateless
	in   [numInputs]keys.Slot
	out  keys.Slot
	seed uint16
	buf  [2 + 16 + 16 + 2 + 4]byte // the hash's input
}

// Protocols with ports in the hash.
const (
	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
	protoSCTP   = 132
)

// Interp sets flow.community_id from the flow's original direction
// (orig.*) when there is one, else from the packet (ip.* and the
// transport keys). An event without both addresses and the protocol goes
// on without it.
func (f *filter) Interp(r *keys.Record) plugin.Verdict {
	var (
		saddr, daddr []byte
		proto        uint8
		sport, dport uint16
		ports        bool
		oneWay       bool
	)
	in := &f.in
	switch {
	case r.Valid(in[inOrigSaddr]) && r.Valid(in[inOrigDaddr]) && r.Valid(in[inOrigProto]):
		saddr, daddr, proto = r.Bytes(in[inOrigSaddr]), r.Bytes(in[inOrigDaddr]), uint8(r.Uint(in[inOrigProto]))
		switch proto {
		case protoTCP, protoUDP, protoSCTP:
			sport, dport, ports = f.ports(r, inOrigSport, inOrigDport)
		}
	case r.Valid(in[inSaddr]) && r.Valid(in[inDaddr]) && r.Valid(in[inProto]):
		saddr, daddr, proto = r.Bytes(in[inSaddr]), r.Bytes(in[inDaddr]), uint8(r.Uint(in[inProto]))
		switch proto {
		case protoTCP:
			sport, dport, ports = f.ports(r, inTCPSport, inTCPDport)
		case protoUDP:
			sport, dport, ports = f.ports(r, inUDPSport, inUDPDport)
		case protoSCTP:
			sport, dport, ports = f.ports(r, inSCTPSport, inSCTPDport)
		}
	default:
		return plugin.Continue
	}
	switch proto {
	case protoICMP:
		if r.Valid(in[inICMPType]) {
			sport, dport, oneWay = ICMPPorts(uint8(r.Uint(in[inICMPType])), uint8(r.Uint(in[inICMPCode])), false)
			ports = true
		}
	case protoICMPv6:
		if r.Valid(in[inICMPv6Type]) {
			sport, dport, oneWay = ICMPPorts(uint8(r.Uint(in[inICMPv6Type])), uint8(r.Uint(in[inICMPv6Code])), true)
			ports = true
		}
	}
	if len(saddr) != len(daddr) || len(saddr) != 4 && len(saddr) != 16 {
		return plugin.Continue
	}
	in2 := f.input(saddr, daddr, proto, sport, dport, ports, oneWay)
	sum := sha1.Sum(in2)
	a := r.Arena()
	n := len(a)
	a = append(a, "1:"...)
	a = base64.StdEncoding.AppendEncode(a, sum[:])
	r.SetBytes(f.out, r.Commit(a, n))
	return plugin.Continue
}

func (f *filter) ports(r *keys.Record, s, d int) (uint16, uint16, bool) {
	if !r.Valid(f.in[s]) || !r.Valid(f.in[d]) {
		return 0, 0, false
	}
	return uint16(r.Uint(f.in[s])), uint16(r.Uint(f.in[d])), true
}

// input lays out the hash's input in f.buf: seed, the smaller endpoint
// first (unless the flow is one-way ICMP), protocol, a zero byte, and the
// ports when the protocol has them.
func (f *filter) input(saddr, daddr []byte, proto uint8, sport, dport uint16, ports, oneWay bool) []byte {
	if !oneWay {
		if c := bytes.Compare(saddr, daddr); c > 0 || c == 0 && ports && sport > dport {
			saddr, daddr, sport, dport = daddr, saddr, dport, sport
		}
	}
	b := f.buf[:0]
	b = binary.BigEndian.AppendUint16(b, f.seed)
	b = append(b, saddr...)
	b = append(b, daddr...)
	b = append(b, proto, 0)
	if ports {
		b = binary.BigEndian.AppendUint16(b, sport)
		b = binary.BigEndian.AppendUint16(b, dport)
	}
	return b
}

// ICMPPorts maps an ICMP (v6: ICMPv6) type and code to the port pair of
// the Community ID: a request or reply type maps to itself and its
// counterpart type, any other type to itself and its code, one-way (its
// endpoints are never swapped).
func ICMPPorts(typ, code uint8, v6 bool) (sport, dport uint16, oneWay bool) {
	var other int
	if v6 {
		other = icmp6Counterpart(typ)
	} else {
		other = icmp4Counterpart(typ)
	}
	if other < 0 {
		return uint16(typ), uint16(code), true
	}
	return uint16(typ), uint16(other), false
}

// icmp4Counterpart is the reply of a request type and the other way
// round: echo, timestamp, information, router solicitation and
// advertisement, address mask. -1 for other types.
func icmp4Counterpart(t uint8) int {
	switch t {
	case 8:
		return 0
	case 0:
		return 8
	case 13:
		return 14
	case 14:
		return 13
	case 15:
		return 16
	case 16:
		return 15
	case 10:
		return 9
	case 9:
		return 10
	case 17:
		return 18
	case 18:
		return 17
	}
	return -1
}

// icmp6Counterpart: echo, router and neighbor solicitation and
// advertisement, multicast listener query and report, who-are-you, home
// agent address discovery. -1 for other types.
func icmp6Counterpart(t uint8) int {
	switch t {
	case 128:
		return 129
	case 129:
		return 128
	case 133:
		return 134
	case 134:
		return 133
	case 135:
		return 136
	case 136:
		return 135
	case 130:
		return 131
	case 131:
		return 130
	case 139:
		return 140
	case 140:
		return 139
	case 144:
		return 145
	case 145:
		return 144
	}
	return -1
}
