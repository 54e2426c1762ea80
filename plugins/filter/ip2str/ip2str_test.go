package ip2str

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ulogd-go/ulogd/internal/keys"
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
