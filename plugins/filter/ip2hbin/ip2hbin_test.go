package ip2hbin

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

func TestIP2HBIN(t *testing.T) {
	v6 := []byte{0xfd, 0x99, 15: 1}
	tests := []struct {
		name    string
		in      map[string]any
		reached bool
		want    map[string]string // the outputs (keys containing ".h")
	}{
		{
			name: "ipv4 flow, reply.ip.hdaddr included",
			in: map[string]any{"oob.family": 2,
				"orig.ip.saddr": []byte{10, 99, 0, 1}, "orig.ip.daddr": []byte{10, 99, 0, 2},
				"reply.ip.saddr": []byte{10, 99, 0, 2}, "reply.ip.daddr": []byte{192, 168, 255, 254}},
			reached: true,
			want: map[string]string{
				"orig.ip.hsaddr":  "174260225", // 0x0a630001
				"orig.ip.hdaddr":  "174260226",
				"reply.ip.hsaddr": "174260226",
				"reply.ip.hdaddr": "3232301054", // 0xc0a8fffe
			},
		},
		{
			name:    "ipv4 packet",
			in:      map[string]any{"oob.family": 2, "ip.saddr": []byte{255, 255, 255, 255}, "ip.daddr": []byte{0, 0, 0, 1}},
			reached: true,
			want:    map[string]string{"ip.hsaddr": "4294967295", "ip.hdaddr": "1"},
		},
		{
			name:    "ipv6 leaves the outputs invalid",
			in:      map[string]any{"oob.family": 10, "ip.saddr": v6, "ip.daddr": v6},
			reached: true,
			want:    map[string]string{},
		},
		{
			name:    "bridge with ipv4 ethertype",
			in:      map[string]any{"oob.family": 7, "oob.protocol": 0x0800, "ip.saddr": []byte{192, 0, 2, 1}},
			reached: true,
			want:    map[string]string{"ip.hsaddr": "3221225985"},
		},
		{name: "bridge without protocol fails", in: map[string]any{"oob.family": 7, "ip.saddr": []byte{192, 0, 2, 1}}},
		{name: "bridge with unknown ethertype fails", in: map[string]any{"oob.family": 7, "oob.protocol": 0x88cc}},
		{name: "unknown family fails", in: map[string]any{"oob.family": 3, "ip.saddr": []byte{192, 0, 2, 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := plugintest.New(t, "i:IP2HBIN", "", provides)
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
				if strings.Contains(k, ".h") {
					got[k] = v
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("outputs (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIP2HBINKeys(t *testing.T) {
	_, out, _ := keySpecs(nil)
	var got []string
	for _, k := range out {
		got = append(got, k.String())
	}
	want := []string{
		"ip.hsaddr (unsigned int 32)", "ip.hdaddr (unsigned int 32)",
		"orig.ip.hsaddr (unsigned int 32)", "orig.ip.hdaddr (unsigned int 32)",
		"reply.ip.hsaddr (unsigned int 32)", "reply.ip.hdaddr (unsigned int 32)",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("output keys (-want +got):\n%s", diff)
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

func TestIP2HBINAllocs(t *testing.T) {
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

func BenchmarkIP2HBIN(b *testing.B) {
	f, r := newFilter()
	b.ReportAllocs()
	for b.Loop() {
		event(f, r)
	}
}
