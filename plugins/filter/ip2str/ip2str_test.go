package ip2str

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ulogd-go/ulogd/internal/addrfilter"
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/plugintest"
)

var provides = []keys.Spec{
	{Name: "oob.family", Type: keys.Uint8},
	{Name: "oob.protocol", Type: keys.Uint16},
	{Name: "orig.ip.saddr", Type: keys.IPAddr},
	{Name: "orig.ip.daddr", Type: keys.IPAddr},
	{Name: "reply.ip.saddr", Type: keys.IPAddr},
	{Name: "ip.saddr", Type: keys.IPAddr},
}

func TestIP2STR(t *testing.T) {
	v6 := []byte{0xfd, 0x99, 15: 1}
	tests := []struct {
		name    string
		in      map[string]any
		reached bool
		want    map[string]string // the .str outputs
	}{
		{
			name:    "ipv4 flow",
			in:      map[string]any{"oob.family": 2, "orig.ip.saddr": []byte{10, 99, 0, 1}, "orig.ip.daddr": []byte{10, 99, 0, 2}},
			reached: true,
			want:    map[string]string{"orig.ip.saddr.str": "10.99.0.1", "orig.ip.daddr.str": "10.99.0.2"},
		},
		{
			name:    "ipv6 flow",
			in:      map[string]any{"oob.family": 10, "orig.ip.saddr": v6, "reply.ip.saddr": v6},
			reached: true,
			want:    map[string]string{"orig.ip.saddr.str": "fd99::1", "reply.ip.saddr.str": "fd99::1"},
		},
		{
			name:    "v4-mapped stays mapped",
			in:      map[string]any{"oob.family": 10, "ip.saddr": []byte{10: 0xff, 11: 0xff, 12: 10, 13: 0, 14: 0, 15: 1}},
			reached: true,
			want:    map[string]string{"ip.saddr.str": "::ffff:10.0.0.1"},
		},
		{
			name:    "bridge with ipv4 ethertype",
			in:      map[string]any{"oob.family": 7, "oob.protocol": 0x0800, "ip.saddr": []byte{192, 0, 2, 1}},
			reached: true,
			want:    map[string]string{"ip.saddr.str": "192.0.2.1"},
		},
		{
			name:    "arp family",
			in:      map[string]any{"oob.family": 3, "ip.saddr": []byte{10, 99, 0, 1}},
			reached: true,
			want:    map[string]string{"ip.saddr.str": "10.99.0.1"},
		},
		{
			name: "bridge without protocol fails",
			in:   map[string]any{"oob.family": 7, "ip.saddr": []byte{192, 0, 2, 1}},
		},
		{
			name: "bridge with unknown ethertype fails",
			in:   map[string]any{"oob.family": 7, "oob.protocol": 0x88cc},
		},
		{
			name: "unknown family fails",
			in:   map[string]any{"oob.family": 4, "ip.saddr": []byte{192, 0, 2, 1}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := plugintest.New(t, "i:IP2STR", "", provides)
			reached, out := h.Event(tt.in)
			if reached != tt.reached {
				t.Fatalf("reached = %v, want %v", reached, tt.reached)
			}
			if !reached {
				return
			}
			got := map[string]string{}
			for k, v := range out {
				if len(k) > 4 && k[len(k)-4:] == ".str" {
					got[k] = v
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("outputs (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIP2STRFailureCounted(t *testing.T) {
	h := plugintest.New(t, "i:IP2STR", "", provides)
	h.Event(map[string]any{"oob.family": 99})
	in := h.Graph.Stacks[0].Instances[1]
	if got := in.Stats().Failed.Load(); got != 1 {
		t.Errorf("failed = %d, want 1", got)
	}
}

// netipText is the reference text form: netip's, which keys.AppendIP
// gives the other printers.
func netipText(b []byte) string {
	return string(keys.AppendIP(nil, b))
}

func TestAppendIPMatchesNetip(t *testing.T) {
	check := func(b []byte) {
		t.Helper()
		if got, want := string(appendIP([]byte("x"), b)), "x"+netipText(b); got != want {
			t.Fatalf("% x: %q, want %q", b, got, want)
		}
	}
	// Every octet value in every position.
	for i := range 4 {
		for v := range 256 {
			b := []byte{1, 22, 133, 4}
			b[i] = byte(v)
			check(b)
		}
	}
	// Every pattern of zero groups, with group values of each length.
	for _, g := range []uint16{1, 0xa, 0x10, 0xab, 0x100, 0xabc, 0x1000, 0xabcd, 0xffff} {
		for mask := range 256 {
			b := make([]byte, 16)
			for i := range 8 {
				if mask&(1<<i) != 0 {
					b[2*i], b[2*i+1] = byte(g>>8), byte(g)
				}
			}
			check(b)
		}
	}
	// v4-mapped and its neighbours, other lengths.
	check([]byte{10: 0xff, 11: 0xff, 12: 10, 13: 0, 14: 0, 15: 1})
	check([]byte{10: 0xff, 11: 0xfe, 12: 10, 13: 0, 14: 0, 15: 1})
	check([]byte{9: 1, 10: 0xff, 11: 0xff, 12: 10, 13: 0, 14: 0, 15: 1})
	check([]byte{12: 10, 13: 0, 14: 0, 15: 1})
	check([]byte{0xff, 0xff, 12: 10, 15: 1})
	for _, b := range [][]byte{nil, {1}, {1, 2, 3}, make([]byte, 5), make([]byte, 15), make([]byte, 17)} {
		if got := appendIP([]byte("x"), b); string(got) != "x" {
			t.Errorf("%d bytes: %q", len(b), got)
		}
	}
}

func FuzzAppendIP(f *testing.F) {
	f.Add([]byte{10, 99, 0, 1})
	f.Add([]byte{0xfd, 0x99, 15: 1})
	f.Add([]byte{10: 0xff, 11: 0xff, 12: 10, 15: 1})
	f.Add([]byte{0x20, 0x01, 0x0d, 0xb8, 6: 1, 14: 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := string(appendIP(nil, b)), netipText(b); got != want {
			t.Fatalf("% x: %q, want %q", b, got, want)
		}
	})
}

// TestIP2STRArenaGrows: when the record's arena has not enough room left,
// the texts go to a grown arena and earlier values stay intact.
func TestIP2STRArenaGrows(t *testing.T) {
	for fill := 4096 - 45; fill <= 4096; fill++ {
		f, r := benchFilter()
		r.SetUint(f.In[addrfilter.InFamily], 10)
		r.SetBytes(f.In[addrfilter.InAddrs+2], []byte{0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 12: 0xde, 13: 0xad, 14: 0xbe, 15: 0xef})
		r.SetBytes(f.In[addrfilter.InAddrs+4], []byte{10: 0xff, 11: 0xff, 12: 192, 13: 168, 14: 100, 15: 200})
		early := strings.Repeat("e", fill)
		r.SetString(f.Out[7], early) // an earlier value in the arena
		if f.Interp(r) != plugin.Continue {
			t.Fatal("event failed")
		}
		if got := string(r.Bytes(f.Out[2])); got != "2001:db8:ffff::dead:beef" {
			t.Fatalf("fill %d: orig.ip.saddr.str = %q", fill, got)
		}
		if got := string(r.Bytes(f.Out[4])); got != "::ffff:192.168.100.200" {
			t.Fatalf("fill %d: reply.ip.saddr.str = %q", fill, got)
		}
		if got := string(r.Bytes(f.Out[7])); got != early {
			t.Fatalf("fill %d: earlier value changed", fill)
		}
	}
}
