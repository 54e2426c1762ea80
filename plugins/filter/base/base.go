// Package base is the BASE filter: it decodes the network and transport
// headers of a logged packet (raw.pkt from NFLOG) into typed keys: ip.*,
// ip6.*, tcp.*, udp.*, icmp.*, icmpv6.*, sctp.*, ahesp.spi and arp.*.
//
// The decoder reads the packet in place: address and hardware-address
// values alias the packet bytes, numbers are converted to host order. It
// never reads past the captured length (the smaller of raw.pktlen and the
// length of raw.pkt), never allocates, and a header cut short leaves its
// keys invalid while the keys of the headers before it are still set.
//
// Where ulogd2 decodes a wrong value, BASE decodes the right one (TCP data
// offset and reserved bits, ICMP checksums in host order, the ICMP gateway
// and the ARP addresses as real addresses, the IPsec SPI, no transport
// header in a non-first IPv4 fragment): see README.md and docs/compat.md.
package base

import (
	"encoding/binary"

	"golang.org/x/sys/unix"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
)

func init() { plugin.Register(Descriptor()) }

// Descriptor returns the BASE plugin's descriptor.
func Descriptor() *plugin.Descriptor {
	return plugin.Define(plugin.Def[plugin.NoConfig]{
		Name:    "BASE",
		Kind:    plugin.Filter,
		Summary: "decode IPv4/IPv6/TCP/UDP/ICMP/SCTP/IPsec/ARP headers of a packet",
		Input:   plugin.DTRaw,
		Output:  plugin.DTPacket,
		Keys:    func(*plugin.NoConfig) ([]keys.Spec, []keys.Spec, error) { return inputs, outputs, nil },
		New: func(env *plugin.Env, _ *plugin.NoConfig) (plugin.Instance, error) {
			f := &filter{}
			copy(f.in[:], env.In)
			copy(f.out[:], env.Out)
			return f, nil
		},
	})
}

type filter struct {
	plugin.Stateless
	in  [numInputs]keys.Slot
	out [numOutputs]keys.Slot
}

// Interp decodes one packet. It always continues the stack.
func (f *filter) Interp(r *keys.Record) plugin.Verdict {
	// ulogd2 always sets oob.protocol, even from an invalid input (0).
	proto := r.Uint(f.in[inProtocol])
	r.SetUint(f.out[oobProtocol], proto)

	p := r.Bytes(f.in[inPkt])
	if n := r.Uint(f.in[inPktLen]); n < uint64(len(p)) {
		p = p[:n]
	}
	p = p[:len(p):len(p)] // consumers must never append into the packet

	switch r.Uint(f.in[inFamily]) {
	case unix.NFPROTO_IPV4:
		f.ipv4(r, p)
	case unix.NFPROTO_IPV6:
		f.ipv6(r, p)
	case unix.NFPROTO_ARP:
		f.arp(r, p)
	case unix.NFPROTO_BRIDGE:
		switch proto {
		case unix.ETH_P_IP:
			f.ipv4(r, p)
		case unix.ETH_P_IPV6:
			f.ipv6(r, p)
		case unix.ETH_P_ARP:
			f.arp(r, p)
		}
	}
	return plugin.Continue
}

func be16(b []byte) uint64 { return uint64(binary.BigEndian.Uint16(b)) }
func be32(b []byte) uint64 { return uint64(binary.BigEndian.Uint32(b)) }

// ipv4 decodes an IPv4 header: every field that lies inside the captured
// bytes is set (all are in the first 20 bytes), then the transport header
// at ihl*4, for the first fragment only.
func (f *filter) ipv4(r *keys.Record, p []byte) {
	o := &f.out
	n := len(p)
	if n < 1 {
		return
	}
	ihl := int(p[0] & 0x0f)
	r.SetUint(o[ipIHL], uint64(ihl))
	if n >= 2 {
		r.SetUint(o[ipTOS], uint64(p[1]))
	}
	if n >= 4 {
		r.SetUint(o[ipTotLen], be16(p[2:4]))
	}
	if n >= 6 {
		r.SetUint(o[ipID], be16(p[4:6]))
	}
	if n >= 8 {
		r.SetUint(o[ipFragOff], be16(p[6:8])) // flags and offset, as ulogd2
	}
	if n >= 9 {
		r.SetUint(o[ipTTL], uint64(p[8]))
	}
	if n >= 10 {
		r.SetUint(o[ipProtocol], uint64(p[9]))
	}
	if n >= 12 {
		r.SetUint(o[ipCsum], be16(p[10:12]))
	}
	if n >= 16 {
		r.SetBytes(o[ipSaddr], p[12:16:16])
	}
	if n < 20 {
		return
	}
	r.SetBytes(o[ipDaddr], p[16:20:20])

	hl := ihl * 4
	if ihl < 5 || hl > n {
		return // no room for a transport header after a bogus or cut IHL
	}
	if be16(p[6:8])&0x1fff != 0 {
		return // a non-first fragment carries no transport header
	}
	f.transport(r, p[9], p[hl:], false)
}

// ipv6 decodes an IPv6 header and walks its extension headers up to the
// transport header. ip6.nexthdr is the last header type seen: the
// transport protocol, the next header of a non-first fragment, ESP, or the
// header that was cut short.
func (f *filter) ipv6(r *keys.Record, p []byte) {
	o := &f.out
	n := len(p)
	if n >= 2 {
		r.SetUint(o[ip6Priority], uint64(p[0]&0x0f)<<4|uint64(p[1]>>4))
	}
	if n >= 4 {
		r.SetUint(o[ip6FlowLabel], be32(p[0:4])&0x000fffff)
	}
	if n >= 6 {
		r.SetUint(o[ip6PayloadLen], be16(p[4:6]))
	}
	if n >= 8 {
		r.SetUint(o[ip6HopLimit], uint64(p[7]))
	}
	if n >= 24 {
		r.SetBytes(o[ipSaddr], p[8:24:24])
	}
	if n < 7 {
		return
	}
	next := p[6]
	if n >= 40 {
		r.SetBytes(o[ipDaddr], p[24:40:40])
		next = f.ip6Walk(r, p, next)
	}
	r.SetUint(o[ip6NextHdr], uint64(next))
}

// ip6Walk follows the extension headers starting at offset 40 and returns
// the last header type seen.
func (f *filter) ip6Walk(r *keys.Record, p []byte, next uint8) uint8 {
	o := &f.out
	off := 40
	for {
		rest := p[off:]
		switch next {
		case unix.IPPROTO_HOPOPTS, unix.IPPROTO_ROUTING, unix.IPPROTO_DSTOPTS:
			if len(rest) < 2 {
				return next
			}
			hl := (int(rest[1]) + 1) * 8
			if len(rest) < hl {
				return next
			}
			next, off = rest[0], off+hl
		case unix.IPPROTO_FRAGMENT:
			if len(rest) < 8 {
				return next
			}
			fragoff := be16(rest[2:4]) &^ 7 // offset in bytes, flags masked
			r.SetUint(o[ip6FragOff], fragoff)
			r.SetUint(o[ip6FragID], be32(rest[4:8]))
			next, off = rest[0], off+8
			if fragoff != 0 {
				// A non-first fragment: what follows is payload, not a
				// header. Report the protocol it belongs to.
				return next
			}
		case unix.IPPROTO_AH:
			if len(rest) < 2 {
				return next
			}
			if len(rest) >= 8 {
				r.SetUint(o[aheSPI], be32(rest[4:8]))
			}
			hl := (int(rest[1]) + 2) * 4
			if len(rest) < hl {
				return next
			}
			next, off = rest[0], off+hl
		case unix.IPPROTO_ESP:
			// Everything after the SPI and sequence number is encrypted.
			r.SetUint(o[ipProtocol], unix.IPPROTO_ESP)
			if len(rest) >= 4 {
				r.SetUint(o[aheSPI], be32(rest[0:4]))
			}
			return next
		default:
			r.SetUint(o[ipProtocol], uint64(next))
			f.transport(r, next, rest, true)
			return next
		}
	}
}

// transport decodes the header of protocol proto at the start of p.
func (f *filter) transport(r *keys.Record, proto uint8, p []byte, v6 bool) {
	switch proto {
	case unix.IPPROTO_TCP:
		f.tcp(r, p)
	case unix.IPPROTO_UDP, unix.IPPROTO_UDPLITE:
		f.udp(r, p)
	case unix.IPPROTO_SCTP:
		f.sctp(r, p)
	case unix.IPPROTO_ICMP:
		if !v6 {
			f.icmp(r, p)
		}
	case unix.IPPROTO_ICMPV6:
		if v6 {
			f.icmpv6(r, p)
		}
	case unix.IPPROTO_ESP:
		if len(p) >= 4 {
			r.SetUint(f.out[aheSPI], be32(p[0:4]))
		}
	case unix.IPPROTO_AH:
		if len(p) >= 8 {
			r.SetUint(f.out[aheSPI], be32(p[4:8]))
		}
	}
}

// TCP flag bits (byte 13 of the header).
const (
	tcpFlagFIN = 1 << iota
	tcpFlagSYN
	tcpFlagRST
	tcpFlagPSH
	tcpFlagACK
	tcpFlagURG
	tcpFlagECE
	tcpFlagCWR
)

// tcp decodes a TCP header of at least 20 bytes. tcp.res1 and tcp.res2
// follow the C library's struct tcphdr: res1 is the 4 reserved bits in
// front of the flags, res2 the ECE and CWR bits; each is true when any of
// its bits is set.
func (f *filter) tcp(r *keys.Record, p []byte) {
	if len(p) < 20 {
		return
	}
	o := &f.out
	flags := p[13]
	r.SetUint(o[tcpSport], be16(p[0:2]))
	r.SetUint(o[tcpDport], be16(p[2:4]))
	r.SetUint(o[tcpSeq], be32(p[4:8]))
	r.SetUint(o[tcpAckSeq], be32(p[8:12]))
	r.SetUint(o[tcpOffset], uint64(p[12]>>4))
	r.SetUint(o[tcpReserved], uint64(p[12]&0x0f))
	r.SetUint(o[tcpWindow], be16(p[14:16]))
	r.SetBool(o[tcpURG], flags&tcpFlagURG != 0)
	if flags&tcpFlagURG != 0 {
		r.SetUint(o[tcpURGP], be16(p[18:20]))
	}
	r.SetBool(o[tcpACK], flags&tcpFlagACK != 0)
	r.SetBool(o[tcpPSH], flags&tcpFlagPSH != 0)
	r.SetBool(o[tcpRST], flags&tcpFlagRST != 0)
	r.SetBool(o[tcpSYN], flags&tcpFlagSYN != 0)
	r.SetBool(o[tcpFIN], flags&tcpFlagFIN != 0)
	r.SetBool(o[tcpRes1], p[12]&0x0f != 0)
	r.SetBool(o[tcpRes2], flags&(tcpFlagECE|tcpFlagCWR) != 0)
	r.SetUint(o[tcpCsum], be16(p[16:18]))
}

// udp decodes a UDP or UDP-Lite header (same layout; for UDP-Lite udp.len
// is the checksum coverage).
func (f *filter) udp(r *keys.Record, p []byte) {
	if len(p) < 8 {
		return
	}
	o := &f.out
	r.SetUint(o[udpSport], be16(p[0:2]))
	r.SetUint(o[udpDport], be16(p[2:4]))
	r.SetUint(o[udpLen], be16(p[4:6]))
	r.SetUint(o[udpCsum], be16(p[6:8]))
}

func (f *filter) sctp(r *keys.Record, p []byte) {
	if len(p) < 12 {
		return
	}
	o := &f.out
	r.SetUint(o[sctpSport], be16(p[0:2]))
	r.SetUint(o[sctpDport], be16(p[2:4]))
	r.SetUint(o[sctpCsum], be32(p[8:12]))
}

// ICMP types with extra fields.
const (
	icmpEchoReply   = 0
	icmpDestUnreach = 3
	icmpRedirect    = 5
	icmpEcho        = 8
	icmpParamProb   = 12

	icmpFragNeeded = 4 // code of icmpDestUnreach

	icmp6EchoRequest = 128
	icmp6EchoReply   = 129
)

// icmp decodes an ICMP header. The checksum is in host order; the gateway
// field (redirect; parameter problem, whose first byte is the pointer) is
// an address in network order like every other IPAddr key.
func (f *filter) icmp(r *keys.Record, p []byte) {
	if len(p) < 8 {
		return
	}
	o := &f.out
	typ, code := p[0], p[1]
	r.SetUint(o[icmpType], uint64(typ))
	r.SetUint(o[icmpCode], uint64(code))
	switch typ {
	case icmpEcho, icmpEchoReply:
		r.SetUint(o[icmpEchoID], be16(p[4:6]))
		r.SetUint(o[icmpEchoSeq], be16(p[6:8]))
	case icmpRedirect, icmpParamProb:
		r.SetBytes(o[icmpGateway], p[4:8:8])
	case icmpDestUnreach:
		if code == icmpFragNeeded {
			r.SetUint(o[icmpFragMTU], be16(p[6:8]))
		}
	}
	r.SetUint(o[icmpCsum], be16(p[2:4]))
}

func (f *filter) icmpv6(r *keys.Record, p []byte) {
	if len(p) < 8 {
		return
	}
	o := &f.out
	typ := p[0]
	r.SetUint(o[icmp6Type], uint64(typ))
	r.SetUint(o[icmp6Code], uint64(p[1]))
	if typ == icmp6EchoRequest || typ == icmp6EchoReply {
		r.SetUint(o[icmp6EchoID], be16(p[4:6]))
		r.SetUint(o[icmp6EchoSeq], be16(p[6:8]))
	}
	r.SetUint(o[icmp6Csum], be16(p[2:4]))
}

// arp decodes an ARP header: the fixed part always, the addresses for the
// Ethernet/IPv4 layout (6-byte hardware, 4-byte protocol addresses).
func (f *filter) arp(r *keys.Record, p []byte) {
	if len(p) < 8 {
		return
	}
	o := &f.out
	r.SetUint(o[arpHWType], be16(p[0:2]))
	r.SetUint(o[arpProtoType], be16(p[2:4]))
	r.SetUint(o[arpOperation], be16(p[6:8]))
	hln, pln := int(p[4]), int(p[5])
	if hln != 6 || pln != 4 || len(p) < 8+2*(hln+pln) {
		return
	}
	r.SetBytes(o[arpSHWAddr], p[8:14:14])
	r.SetBytes(o[arpSaddr], p[14:18:18])
	r.SetBytes(o[arpDHWAddr], p[18:24:24])
	r.SetBytes(o[arpDaddr], p[24:28:28])
}
