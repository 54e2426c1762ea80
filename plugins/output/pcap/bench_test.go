package pcap

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/plugintest"
)

// BenchmarkPCAP appends one packet record per op to a file, as NFLOG and
// BASE give it (the packet, its length, the length from its IP header and
// its time), with sync=1 and the end of a receive batch every 64 packets.
func BenchmarkPCAP(b *testing.B) {
	for _, tc := range []struct {
		name    string
		pkt     string
		family  uint64
		lenSlot int    // ip.totlen or ip6.payloadlen
		lenVal  uint64 // its value
		length  uint32 // the record's original length
	}{
		{"ipv4", ipv4Pkt, 2, inTotLen, 84, 84},
		{"ipv6", ipv6Pkt, 10, inIP6PayloadLen, 64, 104},
	} {
		b.Run(tc.name, func(b *testing.B) {
			d, _ := plugin.Default.Lookup("PCAP")
			path := filepath.Join(b.TempDir(), "x.pcap")
			in, r := plugintest.Inputs(provides)
			inst, err := d.New(&plugin.Env{ID: "p", Config: &Config{File: path, Sync: 1}, In: in, Log: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			plugintest.Started(b, inst)
			s := inst.(*sink)
			pkt := unhex(b, tc.pkt)
			event := func() plugin.Verdict {
				r.SetBytes(inPkt, pkt)
				r.SetUint(inPktLen, uint64(len(pkt)))
				r.SetUint(in[tc.lenSlot], tc.lenVal)
				r.SetUint(inFamily, tc.family)
				r.SetUint(inTimeSec, 0x6b073b3c)
				r.SetUint(inTimeUsec, 0x0b9f85)
				v := s.Interp(r)
				r.Reset()
				return v
			}
			check := func(n int) {
				b.Helper()
				f, err := parsePcap([]byte(plugintest.ReadFile(b, path)))
				if err != nil {
					b.Fatal(err)
				}
				if len(f.recs) != n {
					b.Fatalf("%d records, want %d", len(f.recs), n)
				}
				for i, rec := range f.recs {
					if rec.sec != 0x6b073b3c || rec.usec != 0x0b9f85 || rec.length != tc.length || !bytes.Equal(rec.data, pkt) {
						b.Fatalf("record %d = %+v", i, rec)
					}
				}
			}
			plugintest.BenchFirst(b, event, s.Flush)
			check(1)
			n := plugintest.BenchBatches(b, event, s.Flush)
			check(n)
		})
	}
}
