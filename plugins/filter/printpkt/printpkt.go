// Package printpkt is the PRINTPKT filter: it formats a logged packet, as
// decoded by BASE (with interface names from IFINDEX and address text from
// IP2STR), as one line in the style of the kernel's LOG target, for LOGEMU
// or SYSLOG:
//
//	OUT-LOG IN= OUT=eth0 MAC= SRC=10.99.0.1 DST=10.99.0.2 LEN=84 TOS=00 PREC=0x00 TTL=64 ID=57206 DF PROTO=ICMP TYPE=8 CODE=0 ID=12268 SEQ=1 UID=0 GID=0 MARK=0x0 \n
//
// The grammar is ulogd2's, field for field. The deliberate differences
// (docs/compat.md): the ICMP extras are chosen by the ICMP type (ulogd2
// looks at the code), the redirect gateway is printed in the right byte
// order, and IPv6 ESP is labelled ESP.
package printpkt

import (
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
)

// Input key positions, in ulogd2's declaration order.
const (
	oobFamily = iota
	oobPrefix
	oobIn
	oobOut
	oobUID
	oobGID
	oobMark
	rawMAC
	rawMACLen
	ipSaddrStr
	ipDaddrStr
	ipTotLen
	ipTOS
	ipTTL
	ipID
	ipFragOff
	ipProtocol
	ip6PayloadLen
	ip6Priority
	ip6HopLimit
	ip6FlowLabel
	ip6NextHdr
	ip6FragOff
	ip6FragID
	tcpSport
	tcpDport
	tcpSeq
	tcpAckSeq
	tcpWindow
	tcpSYN
	tcpACK
	tcpPSH
	tcpRST
	tcpFIN
	tcpURG
	tcpURGP
	udpSport
	udpDport
	udpLen
	icmpType
	icmpCode
	icmpEchoID
	icmpEchoSeq
	icmpGateway
	icmpFragMTU
	icmp6Type
	icmp6Code
	icmp6EchoID
	icmp6EchoSeq
	aheSPI
	oobProtocol
	arpHWType
	arpProtoType
	arpOperation
	arpSHWAddr
	arpSaddrStr
	arpDHWAddr
	arpDaddrStr
	sctpSport
	sctpDport
	numInputs
)

// Every input is declared with type None (any type binds), as in ulogd2.
// Only oob.uid and oob.gid are optional.
var inputs = func() []keys.Spec {
	names := [numInputs]string{
		oobFamily: "oob.family", oobPrefix: "oob.prefix", oobIn: "oob.in", oobOut: "oob.out",
		oobUID: "oob.uid", oobGID: "oob.gid", oobMark: "oob.mark",
		rawMAC: "raw.mac", rawMACLen: "raw.mac_len",
		ipSaddrStr: "ip.saddr.str", ipDaddrStr: "ip.daddr.str",
		ipTotLen: "ip.totlen", ipTOS: "ip.tos", ipTTL: "ip.ttl", ipID: "ip.id",
		ipFragOff: "ip.fragoff", ipProtocol: "ip.protocol",
		ip6PayloadLen: "ip6.payloadlen", ip6Priority: "ip6.priority", ip6HopLimit: "ip6.hoplimit",
		ip6FlowLabel: "ip6.flowlabel", ip6NextHdr: "ip6.nexthdr", ip6FragOff: "ip6.fragoff",
		ip6FragID: "ip6.fragid",
		tcpSport:  "tcp.sport", tcpDport: "tcp.dport", tcpSeq: "tcp.seq", tcpAckSeq: "tcp.ackseq",
		tcpWindow: "tcp.window", tcpSYN: "tcp.syn", tcpACK: "tcp.ack", tcpPSH: "tcp.psh",
		tcpRST: "tcp.rst", tcpFIN: "tcp.fin", tcpURG: "tcp.urg", tcpURGP: "tcp.urgp",
		udpSport: "udp.sport", udpDport: "udp.dport", udpLen: "udp.len",
		icmpType: "icmp.type", icmpCode: "icmp.code", icmpEchoID: "icmp.echoid",
		icmpEchoSeq: "icmp.echoseq", icmpGateway: "icmp.gateway", icmpFragMTU: "icmp.fragmtu",
		icmp6Type: "icmpv6.type", icmp6Code: "icmpv6.code", icmp6EchoID: "icmpv6.echoid",
		icmp6EchoSeq: "icmpv6.echoseq", aheSPI: "ahesp.spi", oobProtocol: "oob.protocol",
		arpHWType: "arp.hwtype", arpProtoType: "arp.protocoltype", arpOperation: "arp.operation",
		arpSHWAddr: "arp.shwaddr", arpSaddrStr: "arp.saddr.str", arpDHWAddr: "arp.dhwaddr",
		arpDaddrStr: "arp.daddr.str", sctpSport: "sctp.sport", sctpDport: "sctp.dport",
	}
	in := make([]keys.Spec, numInputs)
	for i, n := range names {
		in[i] = keys.Spec{Name: n, Type: keys.None}
		if i == oobUID || i == oobGID {
			in[i].Flags = keys.Optional
		}
	}
	return in
}()

var outputs = []keys.Spec{{Name: "print", Type: keys.String}}

func init() { plugin.Register(Descriptor()) }

// Descriptor returns the PRINTPKT plugin's descriptor.
func Descriptor() *plugin.Descriptor {
	return plugin.Define(plugin.Def[plugin.NoConfig]{
		Name:    "PRINTPKT",
		Kind:    plugin.Filter,
		Summary: "format a logged packet as a kernel-LOG-like text line",
		Input:   plugin.DTPacket,
		Output:  plugin.DTPacket,
		Keys:    func(*plugin.NoConfig) ([]keys.Spec, []keys.Spec, error) { return inputs, outputs, nil },
		New: func(env *plugin.Env, _ *plugin.NoConfig) (plugin.Instance, error) {
			f := &filter{out: env.Out[0]}
			copy(f.in[:], env.In)
			return f, nil
		},
	})
}

type filter struct {
	plugin.Stateless
	in  [numInputs]keys.Slot
	out keys.Slot
}

// Interp writes the line into the record's arena and sets print. Inputs
// that are not valid read as 0 or empty where ulogd2 prints them
// unconditionally.
func (f *filter) Interp(r *keys.Record) plugin.Verdict {
	a := r.Arena()
	start := len(a)
	in := &f.in

	if r.Valid(in[oobPrefix]) {
		a = append(append(a, r.Bytes(in[oobPrefix])...), ' ')
	}
	if r.Valid(in[oobIn]) && r.Valid(in[oobOut]) {
		a = append(a, "IN="...)
		a = append(a, r.Bytes(in[oobIn])...)
		a = append(a, " OUT="...)
		a = append(a, r.Bytes(in[oobOut])...)
		a = append(a, ' ')
	}
	a = append(a, "MAC="...)
	if r.Valid(in[rawMAC]) {
		a = appendMAC(a, r.Bytes(in[rawMAC]), int(r.Uint(in[rawMACLen])))
	} else {
		a = append(a, ' ')
	}

	switch r.Uint(in[oobFamily]) {
	case unix.NFPROTO_IPV4:
		a = f.ipv4(a, r)
	case unix.NFPROTO_IPV6:
		a = f.ipv6(a, r)
	case unix.NFPROTO_ARP:
		a = f.arp(a, r)
	case unix.NFPROTO_BRIDGE:
		switch p := r.Uint(in[oobProtocol]); p {
		case unix.ETH_P_IP:
			a = f.ipv4(a, r)
		case unix.ETH_P_IPV6:
			a = f.ipv6(a, r)
		case unix.ETH_P_ARP:
			a = f.arp(a, r)
		default:
			a = appendUint(append(a, "PROTO="...), p)
			a = append(a, ' ')
		}
	}

	a = f.field(a, r, "UID=", oobUID)
	a = f.field(a, r, "GID=", oobGID)
	if s := in[oobMark]; r.Valid(s) {
		a = append(a, "MARK=0x"...)
		a = strconv.AppendUint(a, r.Uint(s), 16)
		a = append(a, ' ')
	}
	a = append(a, '\n')
	r.SetBytes(f.out, r.Commit(a, start))
	return plugin.Continue
}

// appendMAC writes the link header as "xx:xx:...:xx " (ulogd2 writes no
// space at all when the length is 0). It never reads past the bytes it
// was given.
func appendMAC(a, mac []byte, n int) []byte {
	n = min(n, len(mac))
	for i := 0; i < n; i++ {
		a = appendHex2(a, mac[i], lowerHex)
		if i == n-1 {
			a = append(a, ' ')
		} else {
			a = append(a, ':')
		}
	}
	return a
}

// field appends "LABEL<n> " when input i is valid.
func (f *filter) field(a []byte, r *keys.Record, label string, i int) []byte {
	s := f.in[i]
	if !r.Valid(s) {
		return a
	}
	a = appendUint(append(a, label...), r.Uint(s))
	return append(a, ' ')
}

// str appends "LABEL<text> " when input i is valid.
func (f *filter) str(a []byte, r *keys.Record, label string, i int) []byte {
	s := f.in[i]
	if !r.Valid(s) {
		return a
	}
	a = append(append(a, label...), r.Bytes(s)...)
	return append(a, ' ')
}

// IPv4 header bits (ip.fragoff holds flags and offset; ip.tos).
const (
	ipCE      = 0x8000
	ipDF      = 0x4000
	ipMF      = 0x2000
	ipOffMask = 0x1fff

	tosMask  = 0x1e
	precMask = 0xe0
)

// ICMP types and codes with extra fields.
const (
	icmpEchoReply   = 0
	icmpDestUnreach = 3
	icmpRedirect    = 5
	icmpEcho        = 8
	icmpParamProb   = 12
	icmpFragNeeded  = 4

	icmp6EchoRequest = 128
	icmp6EchoReply   = 129
)

func (f *filter) ipv4(a []byte, r *keys.Record) []byte {
	in := &f.in
	a = f.str(a, r, "SRC=", ipSaddrStr)
	a = f.str(a, r, "DST=", ipDaddrStr)

	tos := byte(r.Uint(in[ipTOS]))
	a = appendUint(append(a, "LEN="...), r.Uint(in[ipTotLen]))
	a = appendHex2(append(a, " TOS="...), tos&tosMask, upperHex)
	a = appendHex2(append(a, " PREC=0x"...), tos&precMask, upperHex)
	a = appendUint(append(a, " TTL="...), r.Uint(in[ipTTL]))
	a = appendUint(append(a, " ID="...), r.Uint(in[ipID]))
	a = append(a, ' ')

	frag := r.Uint(in[ipFragOff])
	if frag&ipCE != 0 {
		a = append(a, "CE "...)
	}
	if frag&ipDF != 0 {
		a = append(a, "DF "...)
	}
	if frag&ipMF != 0 {
		a = append(a, "MF "...)
	}
	if frag&ipOffMask != 0 {
		a = appendUint(append(a, "FRAG:"...), frag&ipOffMask)
		a = append(a, ' ')
	}

	switch p := byte(r.Uint(in[ipProtocol])); p {
	case unix.IPPROTO_TCP, unix.IPPROTO_UDP, unix.IPPROTO_SCTP, unix.IPPROTO_ESP, unix.IPPROTO_AH:
		a = f.proto(a, r, p)
	case unix.IPPROTO_ICMP:
		a = append(a, "PROTO=ICMP "...)
		if !r.Valid(in[icmpType]) {
			return append(a, "INCOMPLETE"...)
		}
		typ, code := r.Uint(in[icmpType]), r.Uint(in[icmpCode])
		a = appendUint(append(a, "TYPE="...), typ)
		a = appendUint(append(a, " CODE="...), code)
		a = append(a, ' ')
		switch typ {
		case icmpEcho, icmpEchoReply:
			a = appendUint(append(a, "ID="...), r.Uint(in[icmpEchoID]))
			a = appendUint(append(a, " SEQ="...), r.Uint(in[icmpEchoSeq]))
			a = append(a, ' ')
		case icmpParamProb:
			// The pointer is the first byte of the gateway field.
			var ptr uint64
			if g := r.Bytes(in[icmpGateway]); len(g) == 4 {
				ptr = uint64(g[0])
			}
			a = appendUint(append(a, "PARAMETER="...), ptr)
			a = append(a, ' ')
		case icmpRedirect:
			g := r.Bytes(in[icmpGateway])
			if len(g) != 4 {
				g = zeroIPv4[:]
			}
			a = keys.AppendIP(append(a, "GATEWAY="...), g)
			a = append(a, ' ')
		case icmpDestUnreach:
			if code == icmpFragNeeded {
				a = appendUint(append(a, "MTU="...), r.Uint(in[icmpFragMTU]))
				a = append(a, ' ')
			}
		}
	default:
		a = appendUint(append(a, "PROTO="...), uint64(p))
		a = append(a, ' ')
	}
	return a
}

var zeroIPv4 [4]byte

func (f *filter) ipv6(a []byte, r *keys.Record) []byte {
	in := &f.in
	a = f.str(a, r, "SRC=", ipSaddrStr)
	a = f.str(a, r, "DST=", ipDaddrStr)
	if s := in[ip6PayloadLen]; r.Valid(s) {
		a = appendUint(append(a, "LEN="...), r.Uint(s)+40)
		a = append(a, ' ')
	}
	a = f.field(a, r, "TC=", ip6Priority)
	a = f.field(a, r, "HOPLIMIT=", ip6HopLimit)
	a = f.field(a, r, "FLOWLBL=", ip6FlowLabel)
	if r.Valid(in[ip6FragOff]) && r.Valid(in[ip6FragID]) {
		a = appendUint(append(a, "FRAG: "...), r.Uint(in[ip6FragOff]))
		a = appendHex8(append(a, " ID: "...), uint32(r.Uint(in[ip6FragID])))
		a = append(a, ' ')
	}

	switch p := byte(r.Uint(in[ip6NextHdr])); p {
	case unix.IPPROTO_TCP, unix.IPPROTO_UDP, unix.IPPROTO_SCTP, unix.IPPROTO_ESP, unix.IPPROTO_AH:
		a = f.proto(a, r, p)
	case unix.IPPROTO_ICMPV6:
		a = append(a, "PROTO=ICMPv6 "...)
		if !r.Valid(in[icmp6Type]) {
			return append(a, "INCOMPLETE"...)
		}
		if !r.Valid(in[icmp6Code]) {
			return append(a, "TRUNCATED"...)
		}
		typ := r.Uint(in[icmp6Type])
		a = appendUint(append(a, "TYPE="...), typ)
		a = appendUint(append(a, " CODE="...), r.Uint(in[icmp6Code]))
		a = append(a, ' ')
		if typ == icmp6EchoRequest || typ == icmp6EchoReply {
			a = appendUint(append(a, "ID="...), r.Uint(in[icmp6EchoID]))
			a = appendUint(append(a, " SEQ="...), r.Uint(in[icmp6EchoSeq]))
			a = append(a, ' ')
		}
	default:
		a = appendUint(append(a, "PROTO="...), uint64(p))
		a = append(a, ' ')
	}
	return a
}

// proto formats the TCP, UDP, SCTP, ESP and AH parts shared by IPv4 and
// IPv6. INCOMPLETE is written without a trailing space, as in ulogd2.
func (f *filter) proto(a []byte, r *keys.Record, p byte) []byte {
	in := &f.in
	switch p {
	case unix.IPPROTO_TCP:
		a = append(a, "PROTO=TCP "...)
		if !r.Valid(in[tcpSport]) {
			return append(a, "INCOMPLETE"...)
		}
		a = appendUint(append(a, "SPT="...), r.Uint(in[tcpSport]))
		a = appendUint(append(a, " DPT="...), r.Uint(in[tcpDport]))
		a = appendUint(append(a, " SEQ="...), r.Uint(in[tcpSeq]))
		a = appendUint(append(a, " ACK="...), r.Uint(in[tcpAckSeq]))
		a = appendUint(append(a, " WINDOW="...), r.Uint(in[tcpWindow]))
		a = append(a, ' ')
		if r.Uint(in[tcpURG]) != 0 {
			a = append(a, "URG "...)
		}
		if r.Uint(in[tcpACK]) != 0 {
			a = append(a, "ACK "...)
		}
		if r.Uint(in[tcpPSH]) != 0 {
			a = append(a, "PSH "...)
		}
		if r.Uint(in[tcpRST]) != 0 {
			a = append(a, "RST "...)
		}
		if r.Uint(in[tcpSYN]) != 0 {
			a = append(a, "SYN "...)
		}
		if r.Uint(in[tcpFIN]) != 0 {
			a = append(a, "FIN "...)
		}
		a = appendUint(append(a, "URGP="...), r.Uint(in[tcpURGP]))
		return append(a, ' ')
	case unix.IPPROTO_UDP:
		a = append(a, "PROTO=UDP "...)
		if !r.Valid(in[udpSport]) {
			return append(a, "INCOMPLETE"...)
		}
		a = appendUint(append(a, "SPT="...), r.Uint(in[udpSport]))
		a = appendUint(append(a, " DPT="...), r.Uint(in[udpDport]))
		a = appendUint(append(a, " LEN="...), r.Uint(in[udpLen]))
		return append(a, ' ')
	case unix.IPPROTO_SCTP:
		a = append(a, "PROTO=SCTP "...)
		if !r.Valid(in[sctpSport]) {
			return append(a, "INCOMPLETE"...)
		}
		a = appendUint(append(a, "SPT="...), r.Uint(in[sctpSport]))
		a = appendUint(append(a, " DPT="...), r.Uint(in[sctpDport]))
		return append(a, ' ')
	default: // ESP, AH
		if p == unix.IPPROTO_ESP {
			a = append(a, "PROTO=ESP "...)
		} else {
			a = append(a, "PROTO=AH "...)
		}
		if !r.Valid(in[aheSPI]) {
			return append(a, "INCOMPLETE"...)
		}
		a = append(a, "SPI=0x"...)
		a = strconv.AppendUint(a, r.Uint(in[aheSPI]), 16)
		return append(a, ' ')
	}
}

// ARP operations.
const (
	arpRequest = 1
	arpReply   = 2
	arpNAK     = 10
)

func (f *filter) arp(a []byte, r *keys.Record) []byte {
	in := &f.in
	a = f.str(a, r, "SRC=", arpSaddrStr)
	a = f.str(a, r, "DST=", arpDaddrStr)
	a = append(a, "PROTO=ARP "...)
	if !r.Valid(in[arpOperation]) {
		return a
	}
	op := r.Uint(in[arpOperation])
	switch op {
	case arpRequest:
		a = append(a, "REQUEST "...)
	case arpReply:
		a = append(a, "REPLY "...)
	case arpNAK:
		a = append(a, "NAK "...)
	default:
		a = appendUint(append(a, "CODE="...), op)
		a = append(a, ' ')
	}
	if op == arpReply && r.Valid(in[arpSHWAddr]) {
		if mac := r.Bytes(in[arpSHWAddr]); len(mac) >= 6 {
			a = append(a, "REPLY_MAC="...)
			a = appendMAC(a, mac, 6)
		}
	}
	return a
}

func appendUint(a []byte, v uint64) []byte { return strconv.AppendUint(a, v, 10) }

const (
	lowerHex = "0123456789abcdef"
	upperHex = "0123456789ABCDEF"
)

// appendHex2 appends b as two hex digits (%02x / %02X).
func appendHex2(a []byte, b byte, digits string) []byte {
	return append(a, digits[b>>4], digits[b&0x0f])
}

// appendHex8 appends v as eight lowercase hex digits (%08x).
func appendHex8(a []byte, v uint32) []byte {
	for shift := 28; shift >= 0; shift -= 4 {
		a = append(a, lowerHex[(v>>uint(shift))&0x0f])
	}
	return a
}
