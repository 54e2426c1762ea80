package communityid

import (
	"encoding/json"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/plugintest"
)

// vector is one published test vector; for ICMP its ports are the type
// and the code (or counterpart type).
type vector struct {
	Proto int     `json:"proto"`
	Saddr string  `json:"saddr"`
	Daddr string  `json:"daddr"`
	Sport *uint16 `json:"sport"`
	Dport *uint16 `json:"dport"`
	ID    string  `json:"communityid"`
}

func vectors(t *testing.T, file string) []vector {
	t.Helper()
	b, err := os.ReadFile("testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) < 20 {
		t.Fatalf("%d vectors in %s", len(vs), file)
	}
	return vs
}

// provides is every input key, as NFCT and BASE give them.
var provides = inputs

func addr(t *testing.T, s string) []byte {
	a := netip.MustParseAddr(s)
	if a.Is4() {
		b := a.As4()
		return b[:]
	}
	b := a.As16()
	return b[:]
}

// packetKeys and flowKeys give a vector's event as BASE and NFCT do.
func packetKeys(t *testing.T, v vector) map[string]any {
	m := map[string]any{"ip.saddr": addr(t, v.Saddr), "ip.daddr": addr(t, v.Daddr), "ip.protocol": v.Proto}
	if v.Sport == nil {
		return m
	}
	sp, dp := int(*v.Sport), int(*v.Dport)
	switch v.Proto {
	case 6:
		m["tcp.sport"], m["tcp.dport"] = sp, dp
	case 17:
		m["udp.sport"], m["udp.dport"] = sp, dp
	case 132:
		m["sctp.sport"], m["sctp.dport"] = sp, dp
	case 1:
		m["icmp.type"], m["icmp.code"] = sp, dp
	case 58:
		m["icmpv6.type"], m["icmpv6.code"] = sp, dp
	}
	return m
}

func flowKeys(t *testing.T, v vector) map[string]any {
	m := map[string]any{"orig.ip.saddr": addr(t, v.Saddr), "orig.ip.daddr": addr(t, v.Daddr), "orig.ip.protocol": v.Proto}
	if v.Sport == nil {
		return m
	}
	sp, dp := int(*v.Sport), int(*v.Dport)
	switch v.Proto {
	case 1:
		m["icmp.type"], m["icmp.code"] = sp, dp
	case 58:
		m["icmpv6.type"], m["icmpv6.code"] = sp, dp
	default:
		m["orig.l4.sport"], m["orig.l4.dport"] = sp, dp
	}
	return m
}

// TestVectors: the specification's test vectors, seed 0 and seed 1, as
// packets and as conntrack flows, through a real stack.
func TestVectors(t *testing.T) {
	for _, tc := range []struct{ file, conf string }{
		{"baseline_deflt.json", ""},
		{"baseline_seed1.json", "seed=1\n"},
	} {
		h := plugintest.New(t, "c:COMMUNITYID", "[c]\n"+tc.conf, provides)
		for i, v := range vectors(t, tc.file) {
			for kind, ev := range map[string]map[string]any{"packet": packetKeys(t, v), "flow": flowKeys(t, v)} {
				reached, out := h.Event(ev)
				if !reached || out["flow.community_id"] != v.ID {
					t.Errorf("%s vector %d %+v as a %s: got %q, want %q", tc.file, i, v, kind, out["flow.community_id"], v.ID)
				}
			}
		}
	}
}

// TestFlowWins: with both a flow's and a packet's keys, the flow's are
// hashed; without addresses nothing is set.
func TestFlowWinsAndMissingKeys(t *testing.T) {
	h := plugintest.New(t, "c:COMMUNITYID", "[c]\n", provides)
	ev := flowKeys(t, vector{Proto: 17, Saddr: "192.168.1.52", Daddr: "8.8.8.8", Sport: u16(54585), Dport: u16(53)})
	for k, v := range packetKeys(t, vector{Proto: 6, Saddr: "10.0.0.1", Daddr: "10.0.0.2", Sport: u16(1), Dport: u16(2)}) {
		ev[k] = v
	}
	if _, out := h.Event(ev); out["flow.community_id"] != "1:d/FP5EW3wiY1vCndhwleRRKHowQ=" {
		t.Errorf("got %q", out["flow.community_id"])
	}
	reached, out := h.Event(map[string]any{"ip.saddr": addr(t, "10.0.0.1"), "ip.protocol": 6})
	if _, ok := out["flow.community_id"]; !reached || ok {
		t.Errorf("without a destination: reached %v, %v", reached, out)
	}
	reached, out = h.Event(map[string]any{"ip.saddr": addr(t, "10.0.0.1"), "ip.daddr": addr(t, "::1"), "ip.protocol": 6})
	if _, ok := out["flow.community_id"]; !reached || ok {
		t.Errorf("mixed families: reached %v, %v", reached, out)
	}
}

func u16(v uint16) *uint16 { return &v }

// TestICMPOneWay: a one-way ICMP message keeps its direction; a request
// and its reply get the same ID.
func TestICMPOneWay(t *testing.T) {
	h := plugintest.New(t, "c:COMMUNITYID", "[c]\n", provides)
	id := func(s, d string, typ, code int) string {
		_, out := h.Event(map[string]any{"ip.saddr": addr(t, s), "ip.daddr": addr(t, d), "ip.protocol": 1,
			"icmp.type": typ, "icmp.code": code})
		return out["flow.community_id"]
	}
	if a, b := id("10.0.0.2", "10.0.0.1", 3, 1), id("10.0.0.1", "10.0.0.2", 3, 1); a == b {
		t.Errorf("unreachable both ways: %s", a)
	}
	if a, b := id("10.0.0.2", "10.0.0.1", 8, 0), id("10.0.0.1", "10.0.0.2", 0, 0); a != b {
		t.Errorf("echo %s, reply %s", a, b)
	}
	for _, tc := range []struct {
		typ, code uint8
		v6        bool
		s, d      uint16
		one       bool
	}{
		{13, 0, false, 13, 14, false}, {17, 0, false, 17, 18, false}, {10, 0, false, 10, 9, false},
		{11, 1, false, 11, 1, true}, {130, 0, true, 130, 131, false}, {145, 0, true, 145, 144, false},
		{1, 3, true, 1, 3, true}, {8, 0, true, 8, 0, true},
	} {
		s, d, one := ICMPPorts(tc.typ, tc.code, tc.v6)
		if s != tc.s || d != tc.d || one != tc.one {
			t.Errorf("ICMPPorts(%d, %d, v6 %v) = %d, %d, %v", tc.typ, tc.code, tc.v6, s, d, one)
		}
	}
}

func TestBadSeed(t *testing.T) {
	for _, s := range []int{-1, 65536} {
		_, _, err := Descriptor().Keys(&Config{Seed: s})
		if err == nil || !strings.Contains(err.Error(), "seed") {
			t.Errorf("seed %d: %v", s, err)
		}
	}
}

func newDirect() (*filter, *keys.Record) {
	types := make([]keys.Type, len(inputs)+1)
	for i, s := range inputs {
		types[i] = s.Type
	}
	types[len(inputs)] = keys.String
	f := &filter{out: keys.Slot(len(inputs))}
	for i := range f.in {
		f.in[i] = keys.Slot(i)
	}
	return f, keys.NewRecord(types)
}

var src, dst = []byte{10, 0, 0, 1}, []byte{10, 0, 0, 2}

func fillFlow(r *keys.Record) {
	r.SetBytes(inOrigSaddr, src)
	r.SetBytes(inOrigDaddr, dst)
	r.SetUint(inOrigProto, 6)
	r.SetUint(inOrigSport, 40000)
	r.SetUint(inOrigDport, 443)
}

func TestZeroAllocs(t *testing.T) {
	f, r := newDirect()
	n := testing.AllocsPerRun(1000, func() {
		fillFlow(r)
		f.Interp(r)
		if !r.Valid(f.out) {
			t.Fatal("no ID")
		}
		r.Reset()
	})
	if n != 0 {
		t.Errorf("%v allocations per event", n)
	}
}

func BenchmarkCOMMUNITYID(b *testing.B) {
	f, r := newDirect()
	b.ReportAllocs()
	for b.Loop() {
		fillFlow(r)
		if f.Interp(r) != plugin.Continue {
			b.Fatal("stopped")
		}
		r.Reset()
	}
}
