package ip2str

import (
	"log/slog"
	"testing"

	"github.com/ulogd-go/ulogd/internal/addrfilter"
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/plugintest"
)

// benchFilter returns an instance wired to a bare record laid out as the
// filter's keys: slots 0 and 1 are oob.family and oob.protocol, 2–9 the
// address inputs in the order of addrNames, 10–17 the .str outputs.
func benchFilter() (*filter, *keys.Record) {
	in, out, _ := keySpecs(nil)
	inSlots, outSlots, r := plugintest.Filter(in, out)
	return newInstance(inSlots, outSlots, slog.New(slog.DiscardHandler)), r
}

// benchEvent is one event as a source leaves it in the record: the family
// and the address keys it provides (by input name), and the .str outputs
// IP2STR must produce from them.
type benchEvent struct {
	family uint64
	addrs  map[string][]byte
	want   map[string]string
}

func benchEvents() []struct {
	name string
	ev   benchEvent
} {
	v6a := []byte{0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x02, 14: 0x01, 15: 0x0a}
	v6b := []byte{0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 12: 0xde, 13: 0xad, 14: 0xbe, 15: 0xef}
	return []struct {
		name string
		ev   benchEvent
	}{
		{"ipv4_flow", benchEvent{
			// NFCT: both directions of a NATed TCP connection.
			family: 2,
			addrs: map[string][]byte{
				"orig.ip.saddr": {192, 168, 10, 23}, "orig.ip.daddr": {93, 184, 216, 34},
				"reply.ip.saddr": {93, 184, 216, 34}, "reply.ip.daddr": {203, 0, 113, 5},
			},
			want: map[string]string{
				"orig.ip.saddr.str": "192.168.10.23", "orig.ip.daddr.str": "93.184.216.34",
				"reply.ip.saddr.str": "93.184.216.34", "reply.ip.daddr.str": "203.0.113.5",
			},
		}},
		{"ipv6_flow", benchEvent{
			family: 10,
			addrs: map[string][]byte{
				"orig.ip.saddr": v6a, "orig.ip.daddr": v6b,
				"reply.ip.saddr": v6b, "reply.ip.daddr": v6a,
			},
			want: map[string]string{
				"orig.ip.saddr.str": "2001:db8:1:2::10a", "orig.ip.daddr.str": "2001:db8:ffff::dead:beef",
				"reply.ip.saddr.str": "2001:db8:ffff::dead:beef", "reply.ip.daddr.str": "2001:db8:1:2::10a",
			},
		}},
		{"ipv4_packet", benchEvent{
			// BASE: the addresses of an IPv4 packet.
			family: 2,
			addrs:  map[string][]byte{"ip.saddr": {10, 99, 0, 1}, "ip.daddr": {172, 16, 254, 100}},
			want:   map[string]string{"ip.saddr.str": "10.99.0.1", "ip.daddr.str": "172.16.254.100"},
		}},
	}
}

// prepare returns the address slots to set and their values, in slot
// order, for ev.
func (f *filter) prepare(ev benchEvent) (slots []keys.Slot, vals [][]byte) {
	for i, n := range addrNames {
		if v, ok := ev.addrs[n]; ok {
			slots = append(slots, f.In[addrfilter.InAddrs+i])
			vals = append(vals, v)
		}
	}
	return slots, vals
}

// set fills r as the source does for one event.
func (f *filter) set(r *keys.Record, family uint64, slots []keys.Slot, vals [][]byte) {
	r.SetUint(f.In[addrfilter.InFamily], family)
	for i, s := range slots {
		r.SetBytes(s, vals[i])
	}
}

// check fails unless the .str outputs of r are exactly want.
func (f *filter) check(tb testing.TB, r *keys.Record, want map[string]string) {
	tb.Helper()
	for i, n := range addrNames {
		got, valid := string(r.Bytes(f.Out[i])), r.Valid(f.Out[i])
		w, ok := want[n+".str"]
		if valid != ok || got != w {
			tb.Fatalf("%s.str = %q (valid %v), want %q", n, got, valid, w)
		}
	}
}

func TestIP2STRBenchEvents(t *testing.T) {
	for _, tc := range benchEvents() {
		f, r := benchFilter()
		slots, vals := f.prepare(tc.ev)
		n := testing.AllocsPerRun(1000, func() {
			r.Reset()
			f.set(r, tc.ev.family, slots, vals)
			if f.Interp(r) != plugin.Continue {
				t.Fatalf("%s: event failed", tc.name)
			}
		})
		f.check(t, r, tc.ev.want)
		if n != 0 {
			t.Errorf("%s: %v allocations per event, want 0", tc.name, n)
		}
	}
}

func BenchmarkIP2STR(b *testing.B) {
	for _, tc := range benchEvents() {
		b.Run(tc.name, func(b *testing.B) {
			f, r := benchFilter()
			slots, vals := f.prepare(tc.ev)
			f.set(r, tc.ev.family, slots, vals)
			if f.Interp(r) != plugin.Continue {
				b.Fatal("event failed")
			}
			f.check(b, r, tc.ev.want)
			r.Reset()
			b.ReportAllocs()
			for b.Loop() {
				f.set(r, tc.ev.family, slots, vals)
				f.Interp(r)
				r.Reset()
			}
		})
	}
}
