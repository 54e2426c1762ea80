package ip2bin

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/plugintest"
)

var provides = []keys.Spec{
	{Name: "oob.family", Type: keys.Uint8},
	{Name: "oob.protocol", Type: keys.Uint16},
	{Name: "ip.saddr", Type: keys.IPAddr},
	{Name: "ip.daddr", Type: keys.IPAddr},
	{Name: "orig.ip.saddr", Type: keys.IPAddr},
	{Name: "orig.ip.daddr", Type: keys.IPAddr},
	{Name: "reply.ip.saddr", Type: keys.IPAddr},
	{Name: "reply.ip.daddr", Type: keys.IPAddr},
}

func TestIP2BIN(t *testing.T) {
	v6a := []byte{0xfd, 0x99, 15: 1}
	v6b := []byte{0x20, 0x01, 0x0d, 0xb8, 14: 0xab, 15: 0xcd}
	tests := []struct {
		name    string
		in      map[string]any
		reached bool
		want    map[string]string // the .bin outputs
	}{
		{
			name: "ipv4 flow, reply.ip.daddr included",
			in: map[string]any{"oob.family": 2,
				"orig.ip.saddr": []byte{10, 99, 0, 1}, "orig.ip.daddr": []byte{10, 99, 0, 2},
				"reply.ip.saddr": []byte{10, 99, 0, 2}, "reply.ip.daddr": []byte{10, 99, 0, 1}},
			reached: true,
			want: map[string]string{
				"orig.ip.saddr.bin":  "0x00000000000000000000ffff0a630001",
				"orig.ip.daddr.bin":  "0x00000000000000000000ffff0a630002",
				"reply.ip.saddr.bin": "0x00000000000000000000ffff0a630002",
				"reply.ip.daddr.bin": "0x00000000000000000000ffff0a630001",
			},
		},
		{
			name:    "ipv6 packet",
			in:      map[string]any{"oob.family": 10, "ip.saddr": v6a, "ip.daddr": v6b},
			reached: true,
			want: map[string]string{
				"ip.saddr.bin": "0xfd990000000000000000000000000001",
				"ip.daddr.bin": "0x20010db800000000000000000000abcd",
			},
		},
		{
			name:    "bridge with ipv6 ethertype",
			in:      map[string]any{"oob.family": 7, "oob.protocol": 0x86dd, "ip.saddr": v6a},
			reached: true,
			want:    map[string]string{"ip.saddr.bin": "0xfd990000000000000000000000000001"},
		},
		{
			name:    "bridge with arp ethertype",
			in:      map[string]any{"oob.family": 7, "oob.protocol": 0x0806, "ip.saddr": []byte{255, 255, 255, 255}},
			reached: true,
			want:    map[string]string{"ip.saddr.bin": "0x00000000000000000000ffffffffffff"},
		},
		{
			name:    "no address: nothing, but the event goes on",
			in:      map[string]any{"oob.family": 2},
			reached: true,
			want:    map[string]string{},
		},
		{
			name:    "an address of a bad length is skipped",
			in:      map[string]any{"oob.family": 2, "ip.saddr": []byte{1, 2, 3}, "ip.daddr": []byte{1, 2, 3, 4}},
			reached: true,
			want:    map[string]string{"ip.daddr.bin": "0x00000000000000000000ffff01020304"},
		},
		{name: "bridge without protocol fails", in: map[string]any{"oob.family": 7, "ip.saddr": []byte{192, 0, 2, 1}}},
		{name: "bridge with unknown ethertype fails", in: map[string]any{"oob.family": 7, "oob.protocol": 0x88cc}},
		{name: "unknown family fails", in: map[string]any{"oob.family": 3, "ip.saddr": []byte{192, 0, 2, 1}}},
		{name: "missing family fails", in: map[string]any{"ip.saddr": []byte{192, 0, 2, 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := plugintest.New(t, "i:IP2BIN", "", provides)
			reached, out := h.Event(tt.in)
			if reached != tt.reached {
				t.Fatalf("reached = %v, want %v", reached, tt.reached)
			}
			if !reached {
				if got := h.Graph.Stacks[0].Instances[1].Stats().Failed.Load(); got != 1 {
					t.Errorf("failed = %d, want 1", got)
				}
				return
			}
			got := map[string]string{}
			for k, v := range out {
				if strings.HasSuffix(k, ".bin") {
					got[k] = v
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("outputs (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIP2BINKeys(t *testing.T) {
	in, out, _ := keySpecs(nil)
	var got []string
	for _, k := range out {
		got = append(got, k.String())
	}
	want := []string{
		"ip.saddr.bin (Unknown type)", "ip.daddr.bin (Unknown type)",
		"orig.ip.saddr.bin (Unknown type)", "orig.ip.daddr.bin (Unknown type)",
		"reply.ip.saddr.bin (Unknown type)", "reply.ip.daddr.bin (Unknown type)",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("output keys (-want +got):\n%s", diff)
	}
	if len(in) != 8 || in[0].Name != "oob.family" || in[1].Name != "oob.protocol" || in[7].Name != "reply.ip.daddr" {
		t.Errorf("input keys = %v", in)
	}
}

// newFilter returns an instance wired to a bare record: slots 0-7 are the
// inputs, 8-13 the outputs.
func newFilter() (*filter, *keys.Record) {
	in, out, _ := keySpecs(nil)
	inSlots, outSlots, r := plugintest.Filter(in, out)
	return newInstance(inSlots, outSlots, slog.New(slog.DiscardHandler)), r
}

var (
	addr4a = []byte{10, 99, 0, 1}
	addr4b = []byte{10, 99, 0, 2}
)

func event(f *filter, r *keys.Record) plugin.Verdict {
	r.SetUint(0, 2)
	r.SetBytes(4, addr4a)
	r.SetBytes(5, addr4b)
	r.SetBytes(6, addr4b)
	r.SetBytes(7, addr4a)
	v := f.Interp(r)
	r.Reset()
	return v
}

func TestIP2BINAllocs(t *testing.T) {
	f, r := newFilter()
	n := testing.AllocsPerRun(1000, func() {
		if event(f, r) != plugin.Continue {
			t.Fatal("event failed")
		}
	})
	if n != 0 {
		t.Errorf("%v allocations per event, want 0", n)
	}
}

func BenchmarkIP2BIN(b *testing.B) {
	f, r := newFilter()
	b.ReportAllocs()
	for b.Loop() {
		event(f, r)
	}
}
