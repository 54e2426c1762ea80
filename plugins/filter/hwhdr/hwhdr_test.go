package hwhdr

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/plugintest"
)

// The keys NFLOG provides that HWHDR reads.
var provides = []keys.Spec{
	{Name: "raw.mac", Type: keys.Raw},
	{Name: "oob.protocol", Type: keys.Uint16},
	{Name: "raw.mac_len", Type: keys.Uint16},
	{Name: "raw.type", Type: keys.Uint16},
	{Name: "raw.mac.saddr", Type: keys.Raw},
	{Name: "raw.mac.addrlen", Type: keys.Uint16},
}

// ethHdr is the header of the observed packet (a capture from the reference run): destination
// 36:01:d3:9b:7d:ff, source 1e:1d:28:ef:3e:33, IPv4.
var ethHdr = []byte{0x36, 0x01, 0xd3, 0x9b, 0x7d, 0xff, 0x1e, 0x1d, 0x28, 0xef, 0x3e, 0x33, 0x08, 0x00}

func TestHWHDR(t *testing.T) {
	long := make([]byte, 43)
	tests := []struct {
		name    string
		in      map[string]any
		reached bool
		want    map[string]string // HWHDR's outputs
	}{
		{
			name:    "observed ethernet packet",
			in:      map[string]any{"oob.protocol": 0x0800, "raw.mac": ethHdr, "raw.mac_len": 14, "raw.type": 1},
			reached: true,
			want: map[string]string{
				"raw.type": "1", "oob.protocol": "2048",
				"mac.saddr.str": "1e:1d:28:ef:3e:33", "mac.daddr.str": "36:01:d3:9b:7d:ff",
				"mac.str": "36:01:d3:9b:7d:ff:1e:1d:28:ef:3e:33:08:00",
			},
		},
		{
			name:    "ethertype comes from the header",
			in:      map[string]any{"oob.protocol": 0, "raw.mac": append(ethHdr[:12:12], 0x86, 0xdd), "raw.mac_len": 14, "raw.type": 1},
			reached: true,
			want: map[string]string{
				"raw.type": "1", "oob.protocol": "34525",
				"mac.saddr.str": "1e:1d:28:ef:3e:33", "mac.daddr.str": "36:01:d3:9b:7d:ff",
				"mac.str": "36:01:d3:9b:7d:ff:1e:1d:28:ef:3e:33:86:dd",
			},
		},
		{
			name:    "no type: a 14-byte header is ethernet (ULOG)",
			in:      map[string]any{"oob.protocol": 0x0800, "raw.mac": ethHdr, "raw.mac_len": 14},
			reached: true,
			want: map[string]string{
				"raw.type": "1", "oob.protocol": "2048",
				"mac.saddr.str": "1e:1d:28:ef:3e:33", "mac.daddr.str": "36:01:d3:9b:7d:ff",
				"mac.str": "36:01:d3:9b:7d:ff:1e:1d:28:ef:3e:33:08:00",
			},
		},
		{
			name:    "no type, other length: void, only mac.str",
			in:      map[string]any{"oob.protocol": 0x0800, "raw.mac": []byte{1, 2, 3, 0xab}, "raw.mac_len": 4},
			reached: true,
			want:    map[string]string{"raw.type": "65535", "oob.protocol": "2048", "mac.str": "01:02:03:ab"},
		},
		{
			name:    "other link type: only mac.str",
			in:      map[string]any{"oob.protocol": 0x0800, "raw.mac": ethHdr, "raw.mac_len": 14, "raw.type": 772},
			reached: true,
			want: map[string]string{"raw.type": "772", "oob.protocol": "2048",
				"mac.str": "36:01:d3:9b:7d:ff:1e:1d:28:ef:3e:33:08:00"},
		},
		{
			name: "hardware source address attribute wins over the header",
			in: map[string]any{"oob.protocol": 0x0800, "raw.mac": ethHdr, "raw.mac_len": 14, "raw.type": 1,
				"raw.mac.saddr": []byte{0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0, 0}, "raw.mac.addrlen": 6},
			reached: true,
			want: map[string]string{
				"raw.type": "1", "oob.protocol": "2048",
				"mac.saddr.str": "aa:bb:cc:dd:ee:ff", "mac.daddr.str": "36:01:d3:9b:7d:ff",
				"mac.str": "36:01:d3:9b:7d:ff:1e:1d:28:ef:3e:33:08:00",
			},
		},
		{
			name: "source address attribute without header: void",
			in: map[string]any{"oob.protocol": 0x86dd,
				"raw.mac.saddr": []byte{0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}, "raw.mac.addrlen": 6},
			reached: true,
			want:    map[string]string{"raw.type": "65535", "oob.protocol": "34525", "mac.saddr.str": "aa:bb:cc:dd:ee:ff"},
		},
		{
			name:    "no hardware header at all",
			in:      map[string]any{"oob.protocol": 0x0800},
			reached: true,
			want:    map[string]string{"oob.protocol": "2048"},
		},
		{
			name:    "mac_len larger than the data: what is there",
			in:      map[string]any{"oob.protocol": 0x0800, "raw.mac": []byte{1, 2}, "raw.mac_len": 8, "raw.type": 772},
			reached: true,
			want:    map[string]string{"raw.type": "772", "oob.protocol": "2048", "mac.str": "01:02"},
		},
		{
			name:    "addrlen larger than the data: what is there",
			in:      map[string]any{"oob.protocol": 0x0800, "raw.mac.saddr": []byte{1, 2}, "raw.mac.addrlen": 6},
			reached: true,
			want:    map[string]string{"raw.type": "65535", "oob.protocol": "2048", "mac.saddr.str": "01:02"},
		},
		{
			name:    "empty header",
			in:      map[string]any{"oob.protocol": 0x0800, "raw.mac": []byte{}, "raw.mac_len": 0, "raw.type": 772},
			reached: true,
			want:    map[string]string{"raw.type": "772", "oob.protocol": "2048", "mac.str": ""},
		},
		{name: "ethernet header too short fails", in: map[string]any{"oob.protocol": 0x0800, "raw.mac": ethHdr[:10], "raw.mac_len": 14, "raw.type": 1}},
		{name: "header without length fails", in: map[string]any{"oob.protocol": 0x0800, "raw.mac": ethHdr, "raw.type": 1}},
		{name: "source address without length fails", in: map[string]any{"oob.protocol": 0x0800, "raw.mac.saddr": ethHdr[:6]}},
		{name: "header over 42 bytes fails", in: map[string]any{"oob.protocol": 0x0800, "raw.mac": long, "raw.mac_len": 43, "raw.type": 772}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := plugintest.New(t, "hw:HWHDR", "", provides)
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
				// The sink reads raw.type and oob.protocol through their
				// nearest provider, HWHDR: the source's values are
				// shadowed even when HWHDR leaves its own invalid.
				switch k {
				case "raw.type", "oob.protocol", "mac.saddr.str", "mac.daddr.str", "mac.str":
					got[k] = v
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("outputs (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHWHDRKeys(t *testing.T) {
	var got []string
	for _, k := range outputs {
		got = append(got, k.String())
	}
	want := []string{"raw.type (unsigned int 16)", "oob.protocol (unsigned int 16)",
		"mac.saddr.str (string)", "mac.daddr.str (string)", "mac.str (string)"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("output keys (-want +got):\n%s", diff)
	}
}

// newFilter returns an instance wired to a bare record: slots 0-5 are the
// inputs, 6-10 the outputs.
func newFilter() (*filter, *keys.Record) {
	var types []keys.Type
	f := &filter{}
	for i, s := range inputs {
		f.in = append(f.in, keys.Slot(i))
		types = append(types, s.Type)
	}
	for i, s := range outputs {
		f.out = append(f.out, keys.Slot(len(inputs)+i))
		types = append(types, s.Type)
	}
	return f, keys.NewRecord(types)
}

func event(f *filter, r *keys.Record, hdr []byte) plugin.Verdict {
	r.SetUint(f.in[inProtocol], 0x0800)
	r.SetBytes(f.in[inMac], hdr)
	r.SetUint(f.in[inMacLen], uint64(len(hdr)))
	r.SetUint(f.in[inType], 1)
	v := f.Interp(r)
	r.Reset()
	return v
}

func TestHWHDRAllocs(t *testing.T) {
	f, r := newFilter()
	n := testing.AllocsPerRun(1000, func() {
		if event(f, r, ethHdr) != plugin.Continue {
			t.Fatal("event failed")
		}
	})
	if n != 0 {
		t.Errorf("%v allocations per event, want 0", n)
	}
}

func BenchmarkHWHDR(b *testing.B) {
	f, r := newFilter()
	b.ReportAllocs()
	for b.Loop() {
		event(f, r, ethHdr)
	}
}

// FuzzHWHDR feeds random headers, lengths and types: the filter must never
// panic, whatever the lengths claim.
func FuzzHWHDR(f *testing.F) {
	f.Add(ethHdr, uint16(14), uint16(1), true, []byte{1, 2, 3, 4, 5, 6}, uint16(6), false)
	f.Add(ethHdr[:5], uint16(14), uint16(1), true, []byte{}, uint16(0), true)
	f.Add([]byte{}, uint16(0), uint16(0), false, []byte{1}, uint16(200), true)
	f.Add(make([]byte, 64), uint16(64), uint16(772), true, []byte(nil), uint16(0), false)
	f.Fuzz(func(t *testing.T, hdr []byte, macLen, typ uint16, withType bool, saddr []byte, addrLen uint16, withSaddr bool) {
		flt, r := newFilter()
		r.SetUint(flt.in[inProtocol], 0x0800)
		r.SetBytes(flt.in[inMac], hdr)
		r.SetUint(flt.in[inMacLen], uint64(macLen))
		if withType {
			r.SetUint(flt.in[inType], uint64(typ))
		}
		if withSaddr {
			r.SetBytes(flt.in[inSaddr], saddr)
			r.SetUint(flt.in[inAddrLen], uint64(addrLen))
		}
		if flt.Interp(r) == plugin.Continue && r.Valid(flt.out[outMac]) {
			if got, max := len(r.Bytes(flt.out[outMac])), 3*len(hdr); got > max {
				t.Fatalf("mac.str is %d bytes for a %d-byte header", got, len(hdr))
			}
		}
	})
}
