package xml

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/nl"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/plugintest"
)

// BenchmarkXML writes one line per op to a file with sync=1, the end of
// a receive batch every 64 events: flows from NFCT (the "ct" message),
// packets from NFLOG (the "raw" message) and packets with their
// conntrack entry (NFLOG with attach_conntrack=1: "raw" and the "ct"
// attributes). The <when> of each line is the real time.
func BenchmarkXML(b *testing.B) {
	cts := ctMsgs(b)
	pkt := nflogMsgs(b)[0] // an ICMP echo request with a prefix
	withCT, _, err := nl.NextMsg(cts["NEW-ipv4-icmp.bin"])
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		raw, ct  []byte // the events' values; nil: not valid
		provides []keys.Spec
		file     string // the file's name, at the fixed time
		want     func(f *formatter) ([]byte, error)
	}{
		{"flow_tcp4", nil, cts["DESTROY-ipv4-tcp.bin"], ctProvides, "ulogd-flow-25112026-180107.xml",
			func(f *formatter) ([]byte, error) { return f.appendFlowMsg(nil, cts["DESTROY-ipv4-tcp.bin"], fixed) }},
		{"flow_udp6", nil, cts["DESTROY-ipv6-udp.bin"], ctProvides, "ulogd-flow-25112026-180107.xml",
			func(f *formatter) ([]byte, error) { return f.appendFlowMsg(nil, cts["DESTROY-ipv6-udp.bin"], fixed) }},
		{"packet", pkt, nil, pktProvides, "ulogd-pkt-25112026-180107.xml",
			func(f *formatter) ([]byte, error) {
				b, _, err := f.appendPacket(nil, pkt, fixed)
				return b, err
			}},
		{"packet_ct", pkt, withCT.Payload[4:], pktProvides, "ulogd-pkt-25112026-180107.xml",
			func(f *formatter) ([]byte, error) {
				b, fam, err := f.appendPacket(nil, pkt, fixed)
				if err != nil {
					return nil, err
				}
				return f.appendFlowAttrs(b, withCT.Payload[4:], fam, fixed)
			}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			wantLine, err := tc.want(new(formatter))
			if err != nil {
				b.Fatal(err)
			}
			// The file is named, and the first line stamped, at a fixed
			// time; the others at the real time.
			dir := b.TempDir()
			x := newSink(b, &Config{Directory: dir, Sync: 1}, tc.provides, fixedClock, nil)
			s := x.sink
			raw, ct := x.slot["raw"], x.slot["ct"]
			event := func() plugin.Verdict {
				if tc.raw != nil {
					x.r.SetBytes(raw, tc.raw)
				}
				if tc.ct != nil {
					x.r.SetBytes(ct, tc.ct)
				}
				v := s.Interp(x.r)
				x.r.Reset()
				return v
			}
			plugintest.BenchFirst(b, event, s.Flush)
			path := filepath.Join(dir, tc.file)
			header := "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<" + s.kind.tag + ">\n"
			if got, want := plugintest.ReadFile(b, path), header+string(wantLine)+"\n"; got != want {
				b.Fatalf("file = %q\nwant %q", got, want)
			}
			s.clock = time.Now
			n := plugintest.BenchBatches(b, event, s.Flush)
			// Every event is a whole line of its kind.
			got, err := os.ReadFile(path)
			if err != nil {
				b.Fatal(err)
			}
			lines := bytes.Split(bytes.TrimSuffix(got, []byte("\n")), []byte("\n"))
			if len(lines) != n+2 {
				b.Fatalf("%d lines, want %d", len(lines), n+2)
			}
			open, end := wantLine[:bytes.IndexByte(wantLine, '>')+1], wantLine[bytes.LastIndexByte(wantLine, '<'):]
			for i, l := range lines[2:] {
				if !bytes.HasPrefix(l, open) || !bytes.HasSuffix(l, end) {
					b.Fatalf("line %d = %q", i, l)
				}
			}
		})
	}
}
