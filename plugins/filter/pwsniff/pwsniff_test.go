package pwsniff

import (
	"encoding/binary"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/plugintest"
)

// The keys NFLOG provides that PWSNIFF reads.
var provides = []keys.Spec{
	{Name: "raw.pkt", Type: keys.Raw},
	{Name: "raw.pktlen", Type: keys.Uint32},
	{Name: "oob.family", Type: keys.Uint8},
}

// tcp returns a TCP header with the given destination port and data
// offset (in 32-bit words; the options are zeros), followed by data.
func tcp(dport uint16, doff int, data string) []byte {
	h := make([]byte, doff*4)
	binary.BigEndian.PutUint16(h[0:2], 40000)
	binary.BigEndian.PutUint16(h[2:4], dport)
	h[12] = byte(doff << 4)
	h[13] = 0x18 // PSH, ACK
	return append(h, data...)
}

// ipv4 wraps seg in an IPv4 header of ihl words.
func ipv4(ihl int, proto byte, seg []byte) []byte {
	h := make([]byte, ihl*4)
	h[0] = 0x40 | byte(ihl)
	binary.BigEndian.PutUint16(h[2:4], uint16(len(h)+len(seg)))
	binary.BigEndian.PutUint16(h[6:8], 0x4000) // DF
	h[8], h[9] = 64, proto
	copy(h[12:16], []byte{10, 99, 0, 1})
	copy(h[16:20], []byte{10, 99, 0, 2})
	return append(h, seg...)
}

// ipv6 wraps seg in an IPv6 header with next header nh.
func ipv6(nh byte, seg []byte) []byte {
	h := make([]byte, 40)
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:6], uint16(len(seg)))
	h[6], h[7] = nh, 64
	h[8], h[9], h[23] = 0xfd, 0x99, 1
	h[24], h[25], h[39] = 0xfd, 0x99, 2
	return append(h, seg...)
}

func pkt(family int, p []byte) map[string]any {
	return map[string]any{"raw.pkt": p, "raw.pktlen": len(p), "oob.family": family}
}

func TestPWSNIFF(t *testing.T) {
	fragment := ipv4(5, 6, tcp(21, 5, "USER x\r\n"))
	binary.BigEndian.PutUint16(fragment[6:8], 0x0010) // offset 128 bytes
	padded := append(ipv4(5, 6, tcp(110, 5, "PASS pw\r\n")), 0, 0, 0, 0, 0, 0)
	tests := []struct {
		name string
		in   map[string]any
		want map[string]string // nil: stopped
	}{
		{"ftp user", pkt(2, ipv4(5, 6, tcp(21, 5, "USER alice\r\n"))), map[string]string{"pwsniff.user": "alice"}},
		{"ftp pass", pkt(2, ipv4(5, 6, tcp(21, 5, "PASS s3cret\r\n"))), map[string]string{"pwsniff.pass": "s3cret"}},
		{"pop3 lower case, LF only", pkt(2, ipv4(5, 6, tcp(110, 5, "pass hunter2\n"))), map[string]string{"pwsniff.pass": "hunter2"}},
		{"mixed case", pkt(2, ipv4(5, 6, tcp(110, 5, "UsEr bob\r\n"))), map[string]string{"pwsniff.user": "bob"}},
		{"no line end: to the end of the payload", pkt(2, ipv4(5, 6, tcp(21, 5, "USER carol"))), map[string]string{"pwsniff.user": "carol"}},
		{"argument keeps inner spaces", pkt(2, ipv4(5, 6, tcp(21, 5, "PASS a b c\r\n"))), map[string]string{"pwsniff.pass": "a b c"}},
		{"empty argument", pkt(2, ipv4(5, 6, tcp(21, 5, "USER \r\n"))), map[string]string{"pwsniff.user": ""}},
		{"both in one segment", pkt(2, ipv4(5, 6, tcp(110, 5, "USER dave\r\nPASS pw\r\n"))), map[string]string{"pwsniff.user": "dave", "pwsniff.pass": "pw"}},
		{"ip options and tcp options", pkt(2, ipv4(7, 6, tcp(21, 8, "USER erin\r\n"))), map[string]string{"pwsniff.user": "erin"}},
		{"ethernet padding is cut by the ip length", pkt(2, padded), map[string]string{"pwsniff.pass": "pw"}},
		{"ipv6", pkt(10, ipv6(6, tcp(21, 5, "USER frank\r\n"))), map[string]string{"pwsniff.user": "frank"}},
		{"bridge ipv4", pkt(7, ipv4(5, 6, tcp(21, 5, "USER gina\r\n"))), map[string]string{"pwsniff.user": "gina"}},
		{"bridge ipv6", pkt(7, ipv6(6, tcp(110, 5, "PASS x\r\n"))), map[string]string{"pwsniff.pass": "x"}},
		{"raw.pktlen shorter than the buffer", map[string]any{"raw.pkt": ipv4(5, 6, tcp(21, 5, "USER henry\r\n")), "raw.pktlen": 40 + 8, "oob.family": 2}, map[string]string{"pwsniff.user": "hen"}},

		{"other command", pkt(2, ipv4(5, 6, tcp(21, 5, "LIST\r\n"))), nil},
		{"no payload", pkt(2, ipv4(5, 6, tcp(21, 5, ""))), nil},
		{"USER without space", pkt(2, ipv4(5, 6, tcp(21, 5, "USERx\r\n"))), nil},
		{"other port", pkt(2, ipv4(5, 6, tcp(22, 5, "USER alice\r\n"))), nil},
		{"udp", pkt(2, ipv4(5, 17, tcp(21, 5, "USER alice\r\n"))), nil},
		{"ipv6 extension header", pkt(10, ipv6(0, tcp(21, 5, "USER alice\r\n"))), nil},
		{"family says ipv6, packet is ipv4", pkt(10, ipv4(5, 6, tcp(21, 5, "USER alice\r\n"))), nil},
		{"arp family", pkt(3, ipv4(5, 6, tcp(21, 5, "USER alice\r\n"))), nil},
		{"non-first fragment", pkt(2, fragment), nil},
		{"truncated ip header", pkt(2, ipv4(5, 6, nil)[:19]), nil},
		{"ihl below 5", func() map[string]any { p := ipv4(5, 6, tcp(21, 5, "USER a\r\n")); p[0] = 0x44; return pkt(2, p) }(), nil},
		{"ihl past the end", pkt(2, ipv4(15, 6, nil)[:40]), nil},
		{"truncated tcp header", pkt(2, ipv4(5, 6, tcp(21, 5, "")[:19])), nil},
		{"tcp data offset past the end", pkt(2, ipv4(5, 6, tcp(21, 15, "")[:40])), nil},
		{"tcp data offset below 5", func() map[string]any { s := tcp(21, 5, "USER a\r\n"); s[12] = 0x40; return pkt(2, ipv4(5, 6, s)) }(), nil},
		{"no packet", map[string]any{"oob.family": 2}, nil},
		{"empty packet", pkt(2, []byte{}), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := plugintest.New(t, "pw:PWSNIFF", "", provides)
			reached, out := h.Event(tt.in)
			if reached != (tt.want != nil) {
				t.Fatalf("reached = %v, want %v", reached, tt.want != nil)
			}
			if !reached {
				if got := h.Graph.Stacks[0].Instances[1].Stats().Stopped.Load(); got != 1 {
					t.Errorf("stopped = %d, want 1", got)
				}
				return
			}
			got := map[string]string{}
			for _, k := range []string{"pwsniff.user", "pwsniff.pass"} {
				if v, ok := out[k]; ok {
					got[k] = v
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("outputs (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPWSNIFFOnlyRawPkt checks that a source providing only raw.pkt is
// enough: the other inputs are optional and the IP version decides.
func TestPWSNIFFOnlyRawPkt(t *testing.T) {
	h := plugintest.New(t, "pw:PWSNIFF", "", []keys.Spec{{Name: "raw.pkt", Type: keys.Raw}})
	reached, out := h.Event(map[string]any{"raw.pkt": ipv6(6, tcp(21, 5, "USER ivan\r\n"))})
	if !reached || out["pwsniff.user"] != "ivan" {
		t.Errorf("reached %v, pwsniff.user %q; want true, \"ivan\"", reached, out["pwsniff.user"])
	}
}

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

func event(f *filter, r *keys.Record, p []byte) plugin.Verdict {
	r.SetBytes(f.in[inPkt], p)
	r.SetUint(f.in[inPktLen], uint64(len(p)))
	r.SetUint(f.in[inFamily], 2)
	v := f.Interp(r)
	r.Reset()
	return v
}

func TestPWSNIFFAllocs(t *testing.T) {
	f, r := newFilter()
	login := ipv4(5, 6, tcp(21, 5, "PASS s3cret\r\n"))
	other := ipv4(5, 6, tcp(21, 5, "RETR file\r\n"))
	n := testing.AllocsPerRun(1000, func() {
		if event(f, r, login) != plugin.Continue || event(f, r, other) != plugin.Stop {
			t.Fatal("wrong verdict")
		}
	})
	if n != 0 {
		t.Errorf("%v allocations per event, want 0", n)
	}
}

func BenchmarkPWSNIFF(b *testing.B) {
	f, r := newFilter()
	login := ipv4(5, 6, tcp(21, 5, "PASS s3cret\r\n"))
	b.ReportAllocs()
	for b.Loop() {
		event(f, r, login)
	}
}

// FuzzPWSNIFF feeds random packets with a random family and length: the
// filter must never panic, and what it outputs lies inside the packet.
func FuzzPWSNIFF(f *testing.F) {
	f.Add(ipv4(5, 6, tcp(21, 5, "USER alice\r\nPASS pw\r\n")), uint8(2), uint32(60))
	f.Add(ipv6(6, tcp(110, 5, "pass x")), uint8(10), uint32(100))
	f.Add(ipv4(15, 6, nil), uint8(7), uint32(1000))
	f.Add([]byte{0x45}, uint8(2), uint32(0))
	f.Fuzz(func(t *testing.T, p []byte, family uint8, pktlen uint32) {
		flt, r := newFilter()
		r.SetBytes(flt.in[inPkt], p)
		r.SetUint(flt.in[inPktLen], uint64(pktlen))
		r.SetUint(flt.in[inFamily], uint64(family))
		if flt.Interp(r) != plugin.Continue {
			return
		}
		for _, s := range flt.out {
			if v := r.Bytes(s); len(v) > len(p) {
				t.Fatalf("output of %d bytes from a %d-byte packet", len(v), len(p))
			}
		}
	})
}
