package base

import (
	"encoding/binary"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/plugintest"
)

// ---------------------------------------------------------------------
// Packet builders.

var (
	a1 = [4]byte{10, 99, 0, 1}
	a2 = [4]byte{10, 99, 0, 2}
	b1 = [16]byte{0xfd, 0x99, 15: 1}
	b2 = [16]byte{0xfd, 0x99, 15: 2}
)

// v4 is an IPv4 header; build fills in the version, IHL (5 unless ihl is
// set), total length (unless totlen is set) and a fixed checksum.
type v4 struct {
	tos, ttl   uint8
	id, frag   uint16
	proto      uint8
	src, dst   [4]byte
	ihl        int
	totlen     int
	opts       []byte // appended after the 20-byte header
	checksumIn uint16
}

func (h v4) build(payload []byte) []byte {
	ihl := h.ihl
	if ihl == 0 {
		ihl = 5 + len(h.opts)/4
	}
	p := make([]byte, 20, 20+len(h.opts)+len(payload))
	p[0] = 0x40 | byte(ihl&0x0f)
	p[1] = h.tos
	tot := h.totlen
	if tot == 0 {
		tot = 20 + len(h.opts) + len(payload)
	}
	binary.BigEndian.PutUint16(p[2:], uint16(tot))
	binary.BigEndian.PutUint16(p[4:], h.id)
	binary.BigEndian.PutUint16(p[6:], h.frag)
	p[8] = h.ttl
	p[9] = h.proto
	binary.BigEndian.PutUint16(p[10:], h.checksumIn)
	copy(p[12:], h.src[:])
	copy(p[16:], h.dst[:])
	p = append(p, h.opts...)
	return append(p, payload...)
}

// v6 is an IPv6 header; build fills in the version and payload length.
type v6 struct {
	tc       uint8
	flow     uint32
	hop      uint8
	next     uint8
	src, dst [16]byte
}

func (h v6) build(payload []byte) []byte {
	p := make([]byte, 40, 40+len(payload))
	binary.BigEndian.PutUint32(p[0:], 6<<28|uint32(h.tc)<<20|h.flow&0xfffff)
	binary.BigEndian.PutUint16(p[4:], uint16(len(payload)))
	p[6] = h.next
	p[7] = h.hop
	copy(p[8:], h.src[:])
	copy(p[24:], h.dst[:])
	return append(p, payload...)
}

func cat(parts ...[]byte) []byte {
	var p []byte
	for _, x := range parts {
		p = append(p, x...)
	}
	return p
}

// tcpSeg is a TCP header with optional options (data offset follows).
type tcpSeg struct {
	sport, dport uint16
	seq, ack     uint32
	res          uint8 // the 4 reserved bits
	flags        uint8
	win, urgp    uint16
	csum         uint16
	opts         []byte
}

func (s tcpSeg) build() []byte {
	p := make([]byte, 20, 20+len(s.opts))
	binary.BigEndian.PutUint16(p[0:], s.sport)
	binary.BigEndian.PutUint16(p[2:], s.dport)
	binary.BigEndian.PutUint32(p[4:], s.seq)
	binary.BigEndian.PutUint32(p[8:], s.ack)
	p[12] = byte((20+len(s.opts))/4)<<4 | s.res&0x0f
	p[13] = s.flags
	binary.BigEndian.PutUint16(p[14:], s.win)
	binary.BigEndian.PutUint16(p[16:], s.csum)
	binary.BigEndian.PutUint16(p[18:], s.urgp)
	return append(p, s.opts...)
}

func udpDgram(sport, dport uint16, payload int) []byte {
	p := make([]byte, 8+payload)
	binary.BigEndian.PutUint16(p[0:], sport)
	binary.BigEndian.PutUint16(p[2:], dport)
	binary.BigEndian.PutUint16(p[4:], uint16(8+payload))
	binary.BigEndian.PutUint16(p[6:], 0xbeef)
	return p
}

// icmpMsg is an ICMP or ICMPv6 header: type, code, checksum, then the
// 4-byte rest-of-header, then payload bytes.
func icmpMsg(typ, code uint8, csum uint16, rest [4]byte, payload int) []byte {
	p := make([]byte, 8+payload)
	p[0], p[1] = typ, code
	binary.BigEndian.PutUint16(p[2:], csum)
	copy(p[4:], rest[:])
	return p
}

func echoRest(id, seq uint16) [4]byte {
	var r [4]byte
	binary.BigEndian.PutUint16(r[0:], id)
	binary.BigEndian.PutUint16(r[2:], seq)
	return r
}

func sctpPkt(sport, dport uint16, vtag, csum uint32) []byte {
	p := make([]byte, 12)
	binary.BigEndian.PutUint16(p[0:], sport)
	binary.BigEndian.PutUint16(p[2:], dport)
	binary.BigEndian.PutUint32(p[4:], vtag)
	binary.BigEndian.PutUint32(p[8:], csum)
	return p
}

// IPv6 extension headers.
func hopByHop(next uint8) []byte { return []byte{next, 0, 1, 4, 0, 0, 0, 0} }
func routing(next uint8) []byte {
	// type 4 (segment routing) with one 16-byte segment: 24 bytes.
	p := make([]byte, 24)
	p[0], p[1], p[2] = next, 2, 4
	return p
}
func fragHdr(next uint8, offset uint16, more bool, id uint32) []byte {
	p := make([]byte, 8)
	p[0] = next
	v := offset << 3
	if more {
		v |= 1
	}
	binary.BigEndian.PutUint16(p[2:], v)
	binary.BigEndian.PutUint32(p[4:], id)
	return p
}
func ahHdr(next uint8, spi uint32) []byte {
	p := make([]byte, 24) // 12 fixed + 12-byte ICV: payload len (24/4)-2 = 4
	p[0], p[1] = next, 4
	binary.BigEndian.PutUint32(p[4:], spi)
	binary.BigEndian.PutUint32(p[8:], 7)
	return p
}
func espHdr(spi uint32) []byte {
	p := make([]byte, 8+16)
	binary.BigEndian.PutUint32(p[0:], spi)
	binary.BigEndian.PutUint32(p[4:], 1)
	return p
}

var (
	macA = []byte{0x36, 0x01, 0xd3, 0x9b, 0x7d, 0xff}
	macB = []byte{0x1e, 0x1d, 0x28, 0xef, 0x3e, 0x33}
)

func arpPkt(op uint16, sha []byte, spa [4]byte, tha []byte, tpa [4]byte) []byte {
	p := make([]byte, 8, 28)
	binary.BigEndian.PutUint16(p[0:], 1)
	binary.BigEndian.PutUint16(p[2:], 0x0800)
	p[4], p[5] = 6, 4
	binary.BigEndian.PutUint16(p[6:], op)
	p = append(p, sha...)
	p = append(p, spa[:]...)
	p = append(p, tha...)
	return append(p, tpa[:]...)
}

// ---------------------------------------------------------------------
// Running BASE in a real stack.

var provides = []keys.Spec{
	{Name: "raw.pkt", Type: keys.Raw},
	{Name: "raw.pktlen", Type: keys.Uint32},
	{Name: "oob.family", Type: keys.Uint8},
	{Name: "oob.protocol", Type: keys.Uint16},
}

// decode walks one packet through "src → base1:BASE → sink" and returns
// BASE's valid outputs as text (raw values as their bytes).
func decode(t testing.TB, h *plugintest.Harness, family, proto int, pkt []byte, pktlen int) map[string]string {
	t.Helper()
	reached, out := h.Event(map[string]any{
		"raw.pkt": pkt, "raw.pktlen": pktlen, "oob.family": family, "oob.protocol": proto,
	})
	if !reached {
		t.Fatal("the event did not reach the sink")
	}
	delete(out, "raw.pkt")
	delete(out, "raw.pktlen")
	delete(out, "oob.family")
	return out
}

func newHarness(t testing.TB) *plugintest.Harness {
	return plugintest.New(t, "base1:BASE", "", provides)
}

// kv builds an expected map from name, value pairs.
func kv(pairs ...any) map[string]string {
	m := map[string]string{}
	for i := 0; i < len(pairs); i += 2 {
		name := pairs[i].(string)
		switch v := pairs[i+1].(type) {
		case int:
			m[name] = strconv.Itoa(v)
		case bool:
			m[name] = "0"
			if v {
				m[name] = "1"
			}
		case string:
			m[name] = v
		case []byte:
			m[name] = string(v)
		default:
			panic("kv: unsupported value")
		}
	}
	return m
}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// Expected key sets of common headers.

func ip4Keys(src, dst string, proto, tos, ttl, totlen, ihl, csum, id, frag, ethertype int) map[string]string {
	return kv("ip.saddr", src, "ip.daddr", dst, "ip.protocol", proto, "ip.tos", tos, "ip.ttl", ttl,
		"ip.totlen", totlen, "ip.ihl", ihl, "ip.csum", csum, "ip.id", id, "ip.fragoff", frag,
		"oob.protocol", ethertype)
}

func ip6Keys(src, dst string, plen, tc, flow, hop, nexthdr int) map[string]string {
	return kv("ip.saddr", src, "ip.daddr", dst, "ip6.payloadlen", plen, "ip6.priority", tc,
		"ip6.flowlabel", flow, "ip6.hoplimit", hop, "ip6.nexthdr", nexthdr, "oob.protocol", 0x86dd)
}

func tcpKeys(sport, dport, seq, ack, win, off, res int, flags map[string]bool, csum int) map[string]string {
	m := kv("tcp.sport", sport, "tcp.dport", dport, "tcp.seq", seq, "tcp.ackseq", ack,
		"tcp.window", win, "tcp.offset", off, "tcp.reserved", res, "tcp.csum", csum)
	for _, f := range []string{"urg", "ack", "psh", "rst", "syn", "fin", "res1", "res2"} {
		m["tcp."+f] = kv("x", flags[f])["x"]
	}
	return m
}

type packetCase struct {
	name   string
	family int
	proto  int // oob.protocol
	pkt    []byte
	want   map[string]string
}

// The packets observed with the reference ulogd2, and others covering each decoder.
func packetCases() []packetCase {
	synOpts := []byte{2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7}
	syn := v4{ttl: 64, id: 12145, frag: 0x4000, proto: 6, src: a1, dst: a2, checksumIn: 0x1234}.build(
		tcpSeg{sport: 53946, dport: 5001, seq: 918074106, flags: 0x02, win: 64240, csum: 0x4c61, opts: synOpts}.build())
	echo := v4{ttl: 64, id: 57206, frag: 0x4000, proto: 1, src: a1, dst: a2}.build(
		icmpMsg(8, 0, 0xd335, echoRest(12268, 1), 56))
	udp := v4{ttl: 64, id: 33207, frag: 0x4000, proto: 17, src: a1, dst: a2}.build(udpDgram(44360, 5002, 4))
	icmp6Echo := v6{hop: 64, flow: 15745, next: 58, src: b1, dst: b2}.build(icmpMsg(128, 0, 0x8f2a, echoRest(12275, 1), 56))

	v4hdr := func(proto uint8, frag uint16) v4 {
		return v4{ttl: 64, id: 1, frag: frag, proto: proto, src: a1, dst: a2}
	}
	ip4 := func(p []byte, proto, frag int) map[string]string {
		return ip4Keys("10.99.0.1", "10.99.0.2", proto, 0, 64, len(p), 5, 0, 1, frag, 0x0800)
	}
	ip6 := func(p []byte, nexthdr int) map[string]string {
		return ip6Keys("fd99::1", "fd99::2", len(p)-40, 0, 0, 64, nexthdr)
	}
	icmp4 := func(typ, code uint8, rest [4]byte) []byte {
		return v4hdr(1, 0).build(icmpMsg(typ, code, 0x0102, rest, 28))
	}

	var cases []packetCase
	add := func(name string, family, proto int, pkt []byte, want ...map[string]string) {
		cases = append(cases, packetCase{name, family, proto, pkt, merge(want...)})
	}

	add("tcp syn (observed)", 2, 0x0800, syn,
		ip4Keys("10.99.0.1", "10.99.0.2", 6, 0, 64, 60, 5, 0x1234, 12145, 16384, 0x0800),
		tcpKeys(53946, 5001, 918074106, 0, 64240, 10, 0, map[string]bool{"syn": true}, 0x4c61))
	add("icmp echo (observed), checksum in host order", 2, 0x0800, echo,
		ip4Keys("10.99.0.1", "10.99.0.2", 1, 0, 64, 84, 5, 0, 57206, 16384, 0x0800),
		kv("icmp.type", 8, "icmp.code", 0, "icmp.echoid", 12268, "icmp.echoseq", 1, "icmp.csum", 0xd335))
	add("udp (observed)", 2, 0x0800, udp,
		ip4Keys("10.99.0.1", "10.99.0.2", 17, 0, 64, 32, 5, 0, 33207, 16384, 0x0800),
		kv("udp.sport", 44360, "udp.dport", 5002, "udp.len", 12, "udp.csum", 0xbeef))
	add("icmpv6 echo (observed)", 10, 0x86dd, icmp6Echo,
		ip6Keys("fd99::1", "fd99::2", 64, 0, 15745, 64, 58), kv("ip.protocol", 58),
		kv("icmpv6.type", 128, "icmpv6.code", 0, "icmpv6.echoid", 12275, "icmpv6.echoseq", 1, "icmpv6.csum", 0x8f2a))

	for _, fl := range []struct {
		name string
		bit  uint8
	}{{"fin", 0x01}, {"syn", 0x02}, {"rst", 0x04}, {"psh", 0x08}, {"ack", 0x10}, {"urg", 0x20}, {"res2", 0x40}, {"res2", 0x80}} {
		seg := tcpSeg{sport: 1, dport: 2, seq: 3, ack: 4, flags: fl.bit, win: 5, urgp: 77, csum: 6}.build()
		p := v4hdr(6, 0).build(seg)
		want := merge(ip4(p, 6, 0), tcpKeys(1, 2, 3, 4, 5, 5, 0, map[string]bool{fl.name: true}, 6))
		if fl.name == "urg" {
			want["tcp.urgp"] = "77"
		}
		add("tcp flag "+fl.name+" "+strconv.Itoa(int(fl.bit)), 2, 0x0800, p, want)
	}
	{
		seg := tcpSeg{sport: 1, dport: 2, res: 0x9, flags: 0x10, csum: 6}.build()
		p := v4hdr(6, 0).build(seg)
		add("tcp reserved bits", 2, 0x0800, p, ip4(p, 6, 0),
			tcpKeys(1, 2, 0, 0, 0, 5, 9, map[string]bool{"ack": true, "res1": true}, 6))
	}
	{
		p := v4hdr(136, 0).build(udpDgram(1000, 2000, 10))
		p[25] = 8 // UDP-Lite: checksum coverage 8
		add("udplite", 2, 0x0800, p, ip4(p, 136, 0), kv("udp.sport", 1000, "udp.dport", 2000, "udp.len", 8, "udp.csum", 0xbeef))
	}
	{
		p := v4hdr(132, 0).build(sctpPkt(5000, 6000, 0xdeadbeef, 0xfedcba98))
		add("sctp", 2, 0x0800, p, ip4(p, 132, 0), kv("sctp.sport", 5000, "sctp.dport", 6000, "sctp.csum", 0xfedcba98))
	}
	{
		p := icmp4(0, 0, echoRest(9, 10))
		add("icmp echo reply", 2, 0x0800, p, ip4(p, 1, 0),
			kv("icmp.type", 0, "icmp.code", 0, "icmp.echoid", 9, "icmp.echoseq", 10, "icmp.csum", 0x0102))
	}
	{
		p := icmp4(3, 4, [4]byte{0, 0, 0x05, 0x78})
		add("icmp frag needed: mtu", 2, 0x0800, p, ip4(p, 1, 0),
			kv("icmp.type", 3, "icmp.code", 4, "icmp.fragmtu", 1400, "icmp.csum", 0x0102))
	}
	{
		p := icmp4(3, 3, [4]byte{0, 0, 0x05, 0x78})
		add("icmp port unreachable: no mtu", 2, 0x0800, p, ip4(p, 1, 0),
			kv("icmp.type", 3, "icmp.code", 3, "icmp.csum", 0x0102))
	}
	{
		p := icmp4(5, 1, [4]byte{10, 99, 0, 254})
		add("icmp redirect: gateway in network order", 2, 0x0800, p, ip4(p, 1, 0),
			kv("icmp.type", 5, "icmp.code", 1, "icmp.gateway", "10.99.0.254", "icmp.csum", 0x0102))
	}
	{
		p := icmp4(12, 0, [4]byte{20, 0, 0, 0})
		add("icmp parameter problem: pointer in the gateway's first byte", 2, 0x0800, p, ip4(p, 1, 0),
			kv("icmp.type", 12, "icmp.code", 0, "icmp.gateway", "20.0.0.0", "icmp.csum", 0x0102))
	}
	{
		p := icmp4(11, 0, [4]byte{})
		add("icmp time exceeded", 2, 0x0800, p, ip4(p, 1, 0), kv("icmp.type", 11, "icmp.code", 0, "icmp.csum", 0x0102))
	}
	{
		p := v6{hop: 255, next: 58, src: b2, dst: b1}.build(icmpMsg(136, 0, 0x1111, [4]byte{0x60}, 24))
		add("icmpv6 neighbour advert", 10, 0x86dd, p,
			ip6Keys("fd99::2", "fd99::1", 32, 0, 0, 255, 58), kv("ip.protocol", 58),
			kv("icmpv6.type", 136, "icmpv6.code", 0, "icmpv6.csum", 0x1111))
	}
	{
		p := v6{tc: 0xb8, flow: 0xabcde, hop: 64, next: 17, src: b1, dst: b2}.build(udpDgram(53, 5353, 3))
		add("ipv6 traffic class and flow label", 10, 0x86dd, p,
			ip6Keys("fd99::1", "fd99::2", 11, 0xb8, 0xabcde, 64, 17), kv("ip.protocol", 17),
			kv("udp.sport", 53, "udp.dport", 5353, "udp.len", 11, "udp.csum", 0xbeef))
	}
	{
		seg := tcpSeg{sport: 80, dport: 8080, seq: 1, ack: 2, flags: 0x18, win: 3, csum: 4}.build()
		p := v6{hop: 64, next: 0, src: b1, dst: b2}.build(cat(hopByHop(43), routing(44), fragHdr(6, 0, true, 0xabcd), seg, []byte("data")))
		add("ipv6 hop-by-hop, routing, first fragment, tcp", 10, 0x86dd, p, ip6(p, 6),
			kv("ip.protocol", 6, "ip6.fragoff", 0, "ip6.fragid", 0xabcd),
			tcpKeys(80, 8080, 1, 2, 3, 5, 0, map[string]bool{"ack": true, "psh": true}, 4))
	}
	{
		seg := tcpSeg{sport: 80, dport: 8080}.build()
		p := v6{hop: 64, next: 44, src: b1, dst: b2}.build(cat(fragHdr(6, 181, false, 0x1234567), seg))
		add("ipv6 non-first fragment: no transport", 10, 0x86dd, p, ip6(p, 6),
			kv("ip6.fragoff", 1448, "ip6.fragid", 0x1234567))
	}
	{
		p := v6{hop: 64, next: 60, src: b1, dst: b2}.build(cat([]byte{59, 0, 1, 4, 0, 0, 0, 0}))
		add("ipv6 dst-opts then no next header", 10, 0x86dd, p, ip6(p, 59), kv("ip.protocol", 59))
	}
	{
		p := v6{hop: 64, next: 51, src: b1, dst: b2}.build(cat(ahHdr(6, 0x1000), tcpSeg{sport: 1, dport: 2}.build()))
		add("ipv6 ah then tcp", 10, 0x86dd, p, ip6(p, 6), kv("ip.protocol", 6, "ahesp.spi", 0x1000),
			tcpKeys(1, 2, 0, 0, 0, 5, 0, nil, 0))
	}
	{
		p := v6{hop: 64, next: 50, src: b1, dst: b2}.build(espHdr(0xc0ffee))
		add("ipv6 esp", 10, 0x86dd, p, ip6(p, 50), kv("ip.protocol", 50, "ahesp.spi", 0xc0ffee))
	}
	{
		p := v4hdr(50, 0).build(espHdr(0x11223344))
		add("ipv4 esp", 2, 0x0800, p, ip4(p, 50, 0), kv("ahesp.spi", 0x11223344))
	}
	{
		p := v4hdr(51, 0).build(cat(ahHdr(6, 0x2000), tcpSeg{}.build()))
		add("ipv4 ah", 2, 0x0800, p, ip4(p, 51, 0), kv("ahesp.spi", 0x2000))
	}
	{
		p := v4hdr(17, 0x2000).build(udpDgram(1, 2, 100))
		add("ipv4 first fragment (MF)", 2, 0x0800, p, ip4(p, 17, 0x2000),
			kv("udp.sport", 1, "udp.dport", 2, "udp.len", 108, "udp.csum", 0xbeef))
	}
	{
		p := v4hdr(17, 185).build(udpDgram(1, 2, 100))
		add("ipv4 non-first fragment: no transport", 2, 0x0800, p, ip4(p, 17, 185))
	}
	{
		p := v4{ttl: 64, id: 1, proto: 6, src: a1, dst: a2, opts: []byte{1, 1, 1, 0}}.build(tcpSeg{sport: 1, dport: 2}.build())
		add("ipv4 with options", 2, 0x0800, p,
			ip4Keys("10.99.0.1", "10.99.0.2", 6, 0, 64, 44, 6, 0, 1, 0, 0x0800), tcpKeys(1, 2, 0, 0, 0, 5, 0, nil, 0))
	}
	{
		p := v4{ttl: 64, id: 1, proto: 6, src: a1, dst: a2, ihl: 6}.build(nil)
		add("ipv4 header cut inside its options (docs/compat.md P6)", 2, 0x0800, p,
			ip4Keys("10.99.0.1", "10.99.0.2", 6, 0, 64, 20, 6, 0, 1, 0, 0x0800))
	}
	{
		p := v4{ttl: 64, id: 1, proto: 6, src: a1, dst: a2, ihl: 2}.build(tcpSeg{sport: 1}.build())
		add("ipv4 with IHL below 5: no transport", 2, 0x0800, p,
			ip4Keys("10.99.0.1", "10.99.0.2", 6, 0, 64, 40, 2, 0, 1, 0, 0x0800))
	}
	{
		p := v4hdr(17, 0).build(udpDgram(7, 8, 0))
		add("bridge ipv4", 7, 0x0800, p, ip4(p, 17, 0), kv("udp.sport", 7, "udp.dport", 8, "udp.len", 8, "udp.csum", 0xbeef))
	}
	{
		p := v6{hop: 64, next: 17, src: b1, dst: b2}.build(udpDgram(7, 8, 0))
		add("bridge ipv6", 7, 0x86dd, p, ip6(p, 17), kv("ip.protocol", 17),
			kv("udp.sport", 7, "udp.dport", 8, "udp.len", 8, "udp.csum", 0xbeef))
	}
	{
		p := arpPkt(1, macA, a1, make([]byte, 6), a2)
		add("arp request over bridge", 7, 0x0806, p, kv("oob.protocol", 0x0806,
			"arp.hwtype", 1, "arp.protocoltype", 0x0800, "arp.operation", 1,
			"arp.shwaddr", macA, "arp.saddr", "10.99.0.1", "arp.dhwaddr", make([]byte, 6), "arp.daddr", "10.99.0.2"))
	}
	{
		p := arpPkt(2, macB, a2, macA, a1)
		add("arp reply, family arp", 3, 0x0806, p, kv("oob.protocol", 0x0806,
			"arp.hwtype", 1, "arp.protocoltype", 0x0800, "arp.operation", 2,
			"arp.shwaddr", macB, "arp.saddr", "10.99.0.2", "arp.dhwaddr", macA, "arp.daddr", "10.99.0.1"))
	}
	{
		p := arpPkt(1, macA, a1, macB, a2)
		p[4] = 8 // not the Ethernet/IPv4 layout: no addresses
		add("arp with another address layout", 3, 0x0806, p, kv("oob.protocol", 0x0806,
			"arp.hwtype", 1, "arp.protocoltype", 0x0800, "arp.operation", 1))
	}
	add("bridge, other ethertype", 7, 0x88cc, []byte{1, 2, 3, 4, 5, 6, 7, 8}, kv("oob.protocol", 0x88cc))
	add("unknown family", 12, 0x0800, udp, kv("oob.protocol", 0x0800))
	add("ipv4 family, empty packet", 2, 0x0800, nil, kv("oob.protocol", 0x0800))
	return cases
}

func TestBASE(t *testing.T) {
	h := newHarness(t)
	for _, tt := range packetCases() {
		t.Run(tt.name, func(t *testing.T) {
			got := decode(t, h, tt.family, tt.proto, tt.pkt, len(tt.pkt))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("keys (-want +got):\n%s", diff)
			}
		})
	}
}

// TestBASECaptureLength: the decoder reads min(raw.pktlen, len(raw.pkt)).
func TestBASECaptureLength(t *testing.T) {
	h := newHarness(t)
	p := v4{ttl: 64, proto: 17, src: a1, dst: a2}.build(udpDgram(1, 2, 10))
	got := decode(t, h, 2, 0x0800, p, 27) // raw.pktlen cuts the UDP header
	if _, ok := got["udp.sport"]; ok || got["ip.daddr"] != "10.99.0.2" {
		t.Errorf("raw.pktlen 27: %v", got)
	}
	got = decode(t, h, 2, 0x0800, p[:27], 1000) // the buffer is shorter than raw.pktlen
	if _, ok := got["udp.sport"]; ok || got["ip.daddr"] != "10.99.0.2" {
		t.Errorf("raw.pkt of 27 bytes: %v", got)
	}
	got = decode(t, h, 2, 0x0800, p, 28)
	if got["udp.sport"] != "1" {
		t.Errorf("raw.pktlen 28: %v", got)
	}
}

// TestBASEOutputKeys pins the output keys, their order and types to the
// spec's Appendix A.2.
func TestBASEOutputKeys(t *testing.T) {
	const want = "ip.saddr (ip), ip.daddr (ip), ip.protocol (u8), ip.tos (u8), ip.ttl (u8), ip.totlen (u16), ip.ihl (u8), ip.csum (u16), ip.id (u16), ip.fragoff (u16), ip6.payloadlen (u16), ip6.priority (u8), ip6.flowlabel (u32), ip6.hoplimit (u8), ip6.nexthdr (u8), ip6.fragoff (u16), ip6.fragid (u32), tcp.sport (u16), tcp.dport (u16), tcp.seq (u32), tcp.ackseq (u32), tcp.window (u16), tcp.offset (u8), tcp.reserved (u8), tcp.urg (bool), tcp.urgp (u16), tcp.ack (bool), tcp.psh (bool), tcp.rst (bool), tcp.syn (bool), tcp.fin (bool), tcp.res1 (bool), tcp.res2 (bool), tcp.csum (u16), udp.sport (u16), udp.dport (u16), udp.len (u16), udp.csum (u16), icmp.type (u8), icmp.code (u8), icmp.echoid (u16), icmp.echoseq (u16), icmp.gateway (ip), icmp.fragmtu (u16), icmp.csum (u16), icmpv6.type (u8), icmpv6.code (u8), icmpv6.echoid (u16), icmpv6.echoseq (u16), icmpv6.csum (u16), ahesp.spi (u32), oob.protocol (u16), arp.hwtype (u16), arp.protocoltype (u16), arp.operation (u16), arp.shwaddr (raw), arp.saddr (ip), arp.dhwaddr (raw), arp.daddr (ip), sctp.sport (u16), sctp.dport (u16), sctp.csum (u32)"
	short := map[keys.Type]string{keys.IPAddr: "ip", keys.Uint8: "u8", keys.Uint16: "u16", keys.Uint32: "u32", keys.Bool: "bool", keys.Raw: "raw"}
	d, _ := plugin.Default.Lookup("BASE")
	in, out, err := d.Keys(nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range out {
		if s.Flags != 0 {
			t.Errorf("%s: flags %#x", s.Name, s.Flags)
		}
		got = append(got, s.Name+" ("+short[s.Type]+")")
	}
	if diff := cmp.Diff(strings.Split(want, ", "), got); diff != "" {
		t.Errorf("output keys (-want +got):\n%s", diff)
	}
	wantIn := []keys.Spec{{Name: "raw.pkt", Type: keys.Raw}, {Name: "raw.pktlen", Type: keys.Uint32},
		{Name: "oob.family", Type: keys.Uint8}, {Name: "oob.protocol", Type: keys.Uint16}}
	if diff := cmp.Diff(wantIn, in); diff != "" {
		t.Errorf("input keys (-want +got):\n%s", diff)
	}
}

// TestBASEHeaderFieldsThatFit checks, for each captured length of an IPv4
// and an IPv6 header, that exactly the fields lying inside it are set.
func TestBASEHeaderFieldsThatFit(t *testing.T) {
	h := newHarness(t)
	p4 := v4{ttl: 64, id: 1, proto: 17, src: a1, dst: a2}.build(udpDgram(1, 2, 0))
	need4 := map[string]int{"ip.ihl": 1, "ip.tos": 2, "ip.totlen": 4, "ip.id": 6, "ip.fragoff": 8, "ip.ttl": 9,
		"ip.protocol": 10, "ip.csum": 12, "ip.saddr": 16, "ip.daddr": 20,
		"udp.sport": 28, "udp.dport": 28, "udp.len": 28, "udp.csum": 28, "oob.protocol": 0}
	p6 := v6{hop: 64, next: 17, src: b1, dst: b2}.build(udpDgram(1, 2, 0))
	need6 := map[string]int{"ip6.priority": 2, "ip6.flowlabel": 4, "ip6.payloadlen": 6, "ip6.nexthdr": 7,
		"ip6.hoplimit": 8, "ip.saddr": 24, "ip.daddr": 40, "ip.protocol": 40,
		"udp.sport": 48, "udp.dport": 48, "udp.len": 48, "udp.csum": 48, "oob.protocol": 0}
	for _, c := range []struct {
		family int
		pkt    []byte
		need   map[string]int
	}{{2, p4, need4}, {10, p6, need6}} {
		for n := 0; n <= len(c.pkt); n++ {
			got := decode(t, h, c.family, 0, c.pkt[:n], n)
			for k, min := range c.need {
				if _, ok := got[k]; ok != (n >= min) {
					t.Errorf("family %d, %d bytes: %s valid=%v, want %v", c.family, n, k, ok, n >= min)
				}
			}
			for k := range got {
				if _, ok := c.need[k]; !ok {
					t.Errorf("family %d, %d bytes: unexpected %s", c.family, n, k)
				}
			}
		}
	}
}

// TestBASETruncated cuts every test packet at every length: no panic, and
// every key set for a cut packet is set, with the same value, for the
// whole packet (ip6.nexthdr excepted: it names the header where the walk
// stopped). Validity only grows with the length.
func TestBASETruncated(t *testing.T) {
	h := newHarness(t)
	for _, tt := range packetCases() {
		full := decode(t, h, tt.family, tt.proto, tt.pkt, len(tt.pkt))
		var prev map[string]string
		for n := 0; n <= len(tt.pkt); n++ {
			// Alternate between a short buffer and a short raw.pktlen.
			pkt, plen := tt.pkt[:n], n+7
			if n%2 == 1 {
				pkt, plen = tt.pkt, n
			}
			got := decode(t, h, tt.family, tt.proto, pkt, plen)
			for k, v := range got {
				if k == "ip6.nexthdr" {
					continue
				}
				if fv, ok := full[k]; !ok || fv != v {
					t.Errorf("%s cut at %d: %s=%q, whole packet has %q (set %v)", tt.name, n, k, v, fv, ok)
				}
			}
			for k := range prev {
				if _, ok := got[k]; !ok {
					t.Errorf("%s cut at %d: %s was set at %d bytes, not any more", tt.name, n, k, n-1)
				}
			}
			prev = got
		}
		if diff := cmp.Diff(full, prev); diff != "" {
			t.Errorf("%s: whole packet differs (-whole +last cut):\n%s", tt.name, diff)
		}
	}
}

// ---------------------------------------------------------------------
// Direct calls: BASE on a record laid out by hand, for the fuzzer, the
// benchmarks and the allocation test.

type direct struct {
	rec   *keys.Record
	base  plugin.Interpreter
	in    [numInputs]keys.Slot
	out   [numOutputs]keys.Slot
	types []keys.Type
}

func newDirect(tb testing.TB) *direct {
	tb.Helper()
	d, ok := plugin.Default.Lookup("BASE")
	if !ok {
		tb.Fatal("BASE is not registered")
	}
	in, out, err := d.Keys(nil)
	if err != nil {
		tb.Fatal(err)
	}
	x := &direct{}
	env := &plugin.Env{ID: "base1", Plugin: "BASE", Log: slog.New(slog.DiscardHandler)}
	for i, s := range in {
		x.in[i] = keys.Slot(len(x.types))
		env.In = append(env.In, x.in[i])
		x.types = append(x.types, s.Type)
	}
	for i, s := range out {
		x.out[i] = keys.Slot(len(x.types))
		env.Out = append(env.Out, x.out[i])
		x.types = append(x.types, s.Type)
	}
	inst, err := d.New(env)
	if err != nil {
		tb.Fatal(err)
	}
	x.base = inst.(plugin.Interpreter)
	x.rec = keys.NewRecord(x.types)
	return x
}

// run decodes one packet; the record holds the result until the next run.
func (x *direct) run(family, proto uint64, pkt []byte, pktlen uint64) plugin.Verdict {
	r := x.rec
	r.Reset()
	r.SetBytes(x.in[inPkt], pkt)
	r.SetUint(x.in[inPktLen], pktlen)
	r.SetUint(x.in[inFamily], family)
	r.SetUint(x.in[inProtocol], proto)
	return x.base.Interp(r)
}

// checkAliases fails when a byte value of BASE lies outside the captured
// part of the packet or has a length its type does not allow.
func (x *direct) checkAliases(t *testing.T, pkt []byte, pktlen uint64) {
	t.Helper()
	capLen := uint64(len(pkt))
	if pktlen < capLen {
		capLen = pktlen
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(pkt)))
	for i, s := range x.out {
		if !x.rec.Valid(s) || outputs[i].Type.IsInteger() {
			continue
		}
		b := x.rec.Bytes(s)
		switch outputs[i].Type {
		case keys.IPAddr:
			if len(b) != 4 && len(b) != 16 {
				t.Fatalf("%s: %d bytes", outputs[i].Name, len(b))
			}
		case keys.Raw:
			if len(b) != 6 {
				t.Fatalf("%s: %d bytes", outputs[i].Name, len(b))
			}
		}
		start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
		if start < base || uint64(start-base)+uint64(len(b)) > capLen {
			t.Fatalf("%s points outside the captured %d bytes (offset %d, %d bytes)",
				outputs[i].Name, capLen, int64(start-base), len(b))
		}
		if cap(b) != len(b) {
			t.Fatalf("%s: capacity %d beyond its length %d", outputs[i].Name, cap(b), len(b))
		}
	}
}

var fuzzFamilies = [...]uint64{2, 10, 7, 3}

func FuzzBASE(f *testing.F) {
	for _, c := range packetCases() {
		fam := uint8(0)
		for i, v := range fuzzFamilies {
			if uint64(c.family) == v {
				fam = uint8(i)
			}
		}
		f.Add(c.pkt, fam, uint16(c.proto), uint32(len(c.pkt)))
	}
	x := newDirect(f)
	f.Fuzz(func(t *testing.T, pkt []byte, fam uint8, proto uint16, pktlen uint32) {
		family := fuzzFamilies[fam%4]
		if x.run(family, uint64(proto), pkt, uint64(pktlen)) != plugin.Continue {
			t.Fatal("BASE did not continue")
		}
		x.checkAliases(t, pkt, uint64(pktlen))
		if got := x.rec.Uint(x.out[oobProtocol]); !x.rec.Valid(x.out[oobProtocol]) || got != uint64(proto) {
			t.Fatalf("oob.protocol = %d, want %d", got, proto)
		}
	})
}

func TestBASEZeroAllocs(t *testing.T) {
	x := newDirect(t)
	for _, c := range packetCases() {
		n := testing.AllocsPerRun(100, func() {
			x.run(uint64(c.family), uint64(c.proto), c.pkt, uint64(len(c.pkt)))
		})
		if n != 0 {
			t.Errorf("%s: %v allocations per packet", c.name, n)
		}
	}
}

func BenchmarkBASE(b *testing.B) {
	x := newDirect(b)
	for i, c := range packetCases()[:4] {
		b.Run([]string{"tcp_syn", "icmp_echo", "udp", "icmpv6_echo"}[i], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				x.run(uint64(c.family), uint64(c.proto), c.pkt, uint64(len(c.pkt)))
			}
		})
	}
}
