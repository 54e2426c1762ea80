package printflow

import (
	"testing"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/plugintest"
)

// benchChain is the flow path of the canonical stack after NFCT: IP2STR
// and PRINTFLOW on a bare record laid out as the engine lays it out.
type benchChain struct {
	*plugintest.Chain
	print keys.Slot
}

func newBenchChain(tb testing.TB) *benchChain {
	tb.Helper()
	c := plugintest.NewChain(tb, nfctKeys, "IP2STR", "PRINTFLOW")
	return &benchChain{Chain: c, print: c.Key["print"]}
}

// setter fills an event's source keys, as NFCT does, without a map walk
// per event.
type setter struct {
	uints  []keys.Slot
	nums   []uint64
	bytes  []keys.Slot
	values [][]byte
}

func (c *benchChain) setter(tb testing.TB, ev map[string]any) *setter {
	tb.Helper()
	s := &setter{}
	for _, k := range nfctKeys { // in key order, for a stable layout
		v, ok := ev[k.Name]
		if !ok {
			continue
		}
		switch v := v.(type) {
		case int:
			s.uints = append(s.uints, c.Src[k.Name])
			s.nums = append(s.nums, uint64(v))
		case []byte:
			s.bytes = append(s.bytes, c.Src[k.Name])
			s.values = append(s.values, v)
		default:
			tb.Fatalf("%s: unsupported value %T", k.Name, v)
		}
	}
	return s
}

func (s *setter) set(r *keys.Record) {
	for i, sl := range s.uints {
		r.SetUint(sl, s.nums[i])
	}
	for i, sl := range s.bytes {
		r.SetBytes(sl, s.values[i])
	}
}

var (
	v6a = []byte{0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x02, 14: 0x01, 15: 0x0a}
	v6b = []byte{0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 12: 0xde, 13: 0xad, 14: 0xbe, 15: 0xef}
)

// flow6 is flow for IPv6 addresses.
func flow6(event, proto int, extra map[string]any) map[string]any {
	m := flow(event, proto, extra)
	m["orig.ip.saddr"], m["orig.ip.daddr"], m["reply.ip.saddr"], m["reply.ip.daddr"] = v6a, v6b, v6b, v6a
	m["oob.family"] = 10
	return m
}

// benchCases are flows as NFCT gives them with accounting on (ICMPv6 has
// no icmp.type/code keys: NFCT sets icmpv6.* instead).
func benchCases() []struct {
	name string
	ev   map[string]any
	want string
} {
	tcp := map[string]any{"orig.l4.sport": 48142, "orig.l4.dport": 443, "reply.l4.sport": 443, "reply.l4.dport": 48142,
		"orig.raw.pktcount": 12, "orig.raw.pktlen": 1874, "reply.raw.pktcount": 10, "reply.raw.pktlen": 18231}
	udp := map[string]any{"orig.l4.sport": 58468, "orig.l4.dport": 53, "reply.l4.sport": 53, "reply.l4.dport": 58468,
		"orig.raw.pktcount": 1, "orig.raw.pktlen": 73, "reply.raw.pktcount": 1, "reply.raw.pktlen": 121}
	icmp := map[string]any{"icmp.type": 8, "icmp.code": 0,
		"orig.raw.pktcount": 4, "orig.raw.pktlen": 336, "reply.raw.pktcount": 4, "reply.raw.pktlen": 336}
	icmp6 := map[string]any{"orig.raw.pktcount": 4, "orig.raw.pktlen": 416, "reply.raw.pktcount": 4, "reply.raw.pktlen": 416}
	const (
		v4o = "SRC=10.99.0.1 DST=10.99.0.2 "
		v4r = "SRC=10.99.0.2 DST=10.99.0.1 "
		v6o = "SRC=2001:db8:1:2::10a DST=2001:db8:ffff::dead:beef "
		v6r = "SRC=2001:db8:ffff::dead:beef DST=2001:db8:1:2::10a "
	)
	return []struct {
		name string
		ev   map[string]any
		want string
	}{
		{"tcp4", flow(4, 6, tcp),
			"[DESTROY] ORIG: " + v4o + "PROTO=TCP SPT=48142 DPT=443 PKTS=12 BYTES=1874 , REPLY: " + v4r + "PROTO=TCP SPT=443 DPT=48142 PKTS=10 BYTES=18231 \n"},
		{"udp4", flow(4, 17, udp),
			"[DESTROY] ORIG: " + v4o + "PROTO=UDP SPT=58468 DPT=53 PKTS=1 BYTES=73 , REPLY: " + v4r + "PROTO=UDP SPT=53 DPT=58468 PKTS=1 BYTES=121 \n"},
		{"icmp4", flow(4, 1, icmp),
			"[DESTROY] ORIG: " + v4o + "PROTO=ICMP TYPE=8 CODE=0 PKTS=4 BYTES=336 , REPLY: " + v4r + "PROTO=ICMP TYPE=8 CODE=0 PKTS=4 BYTES=336 \n"},
		{"tcp6", flow6(4, 6, tcp),
			"[DESTROY] ORIG: " + v6o + "PROTO=TCP SPT=48142 DPT=443 PKTS=12 BYTES=1874 , REPLY: " + v6r + "PROTO=TCP SPT=443 DPT=48142 PKTS=10 BYTES=18231 \n"},
		{"udp6", flow6(4, 17, udp),
			"[DESTROY] ORIG: " + v6o + "PROTO=UDP SPT=58468 DPT=53 PKTS=1 BYTES=73 , REPLY: " + v6r + "PROTO=UDP SPT=53 DPT=58468 PKTS=1 BYTES=121 \n"},
		{"icmp6", flow6(4, 58, icmp6),
			"[DESTROY] ORIG: " + v6o + "PROTO=58 PKTS=4 BYTES=416 , REPLY: " + v6r + "PROTO=58 PKTS=4 BYTES=416 \n"},
	}
}

// prepared returns a chain whose record holds the event after IP2STR,
// and a snapshot of it, so that PRINTFLOW alone can run again and again.
func prepared(tb testing.TB, ev map[string]any, want string) (c *benchChain, snapshot *keys.Record, printflow plugin.Interpreter) {
	tb.Helper()
	c = newBenchChain(tb)
	c.setter(tb, ev).set(c.Rec)
	if !c.Walk() {
		tb.Fatal("the event did not pass the chain")
	}
	if got := string(c.Rec.Bytes(c.print)); got != want {
		tb.Fatalf("line\n got %q\nwant %q", got, want)
	}
	snapshot = c.Snapshot(c.print)
	c.Rec.Reset()
	return c, snapshot, c.Steps[1]
}

func TestPRINTFLOWBenchCases(t *testing.T) {
	for _, tc := range benchCases() {
		c, snap, p := prepared(t, tc.ev, tc.want)
		n := testing.AllocsPerRun(1000, func() {
			c.Replay(snap, p)
		})
		if got := string(c.Rec.Bytes(c.print)); got != tc.want {
			t.Errorf("%s: line\n got %q\nwant %q", tc.name, got, tc.want)
		}
		if n != 0 {
			t.Errorf("%s: %v allocations per line, want 0", tc.name, n)
		}
	}
}

// BenchmarkPRINTFLOW formats the line of flows whose addresses IP2STR
// has already made text.
func BenchmarkPRINTFLOW(b *testing.B) {
	for _, tc := range benchCases() {
		b.Run(tc.name, func(b *testing.B) {
			c, snap, p := prepared(b, tc.ev, tc.want)
			b.ReportAllocs()
			for b.Loop() {
				c.Replay(snap, p)
			}
		})
	}
}

// BenchmarkIP2STRPRINTFLOW is the conntrack line path after the decoder:
// the source's keys set, IP2STR, PRINTFLOW.
func BenchmarkIP2STRPRINTFLOW(b *testing.B) {
	for _, tc := range benchCases() {
		b.Run(tc.name, func(b *testing.B) {
			c := newBenchChain(b)
			s := c.setter(b, tc.ev)
			s.set(c.Rec)
			if !c.Walk() || string(c.Rec.Bytes(c.print)) != tc.want {
				b.Fatalf("line\n got %q\nwant %q", c.Rec.Bytes(c.print), tc.want)
			}
			b.ReportAllocs()
			for b.Loop() {
				c.Rec.Reset()
				s.set(c.Rec)
				c.Walk()
			}
		})
	}
}
