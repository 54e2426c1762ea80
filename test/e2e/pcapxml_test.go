package e2e

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// ---------------------------------------------------------------------
// PCAP

// pcapRecord is one record of a classic pcap file.
type pcapRecord struct {
	sec, usec, length uint32
	data              []byte
}

// readPcapFile parses a classic (microsecond, host order) pcap file and
// returns its 24-byte header and its records; a missing or short file
// gives what is complete so far.
func readPcapFile(t testing.TB, path string) (header []byte, recs []pcapRecord) {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 24 {
		return nil, nil
	}
	header, b = b[:24], b[24:]
	e := binary.NativeEndian
	for len(b) >= 16 {
		caplen := e.Uint32(b[8:])
		if uint64(len(b)-16) < uint64(caplen) {
			break
		}
		recs = append(recs, pcapRecord{sec: e.Uint32(b), usec: e.Uint32(b[4:]), length: e.Uint32(b[12:]), data: b[16 : 16+caplen]})
		b = b[16+caplen:]
	}
	return header, recs
}

func pcapConfig(logfile, out string, group int) string {
	return fmt.Sprintf(`[global]
logfile=%q
loglevel=1
stack=log1:NFLOG,base1:BASE,pcap1:PCAP

[log1]
group=%d

[pcap1]
file=%q
sync=1
`, logfile, group, out)
}

// TestDiffPCAP runs the reference (NFLOG group 2) and ours (group 1) on
// the same packets: every packet A sends or receives is logged to both
// groups by one nft rule set. The two capture files must have the same
// header and the same records; timestamps may differ where the kernel
// gave none (outgoing packets: each daemon stamps them when it reads
// them), so they are compared loosely.
func TestDiffPCAP(t *testing.T) {
	t.Parallel()
	p := NewNSPair(t, NSOptions{})
	p.Nft(t, p.A, `table inet ulogdpcap {
chain out {
type filter hook output priority 0;
log group 1
log group 2
}
chain in {
type filter hook input priority 0;
log group 1
log group 2
}
}`)
	ref, ours := RefBinary(t), OurBinary(t)
	dir := t.TempDir()
	refOut, oursOut := filepath.Join(dir, "ref.pcap"), filepath.Join(dir, "ours.pcap")
	refLog, oursLog := filepath.Join(dir, "ref.log"), filepath.Join(dir, "ours.log")
	refD := StartDaemon(t, DaemonSpec{Name: "ref", Binary: ref, Netns: p.A, Logfile: refLog,
		Config: WriteConfig(t, filepath.Join(dir, "ref.conf"), pcapConfig(refLog, refOut, 2))})
	oursD := StartDaemon(t, DaemonSpec{Name: "ours", Binary: ours, Netns: p.A, Logfile: oursLog,
		Config: WriteConfig(t, filepath.Join(dir, "ours.conf"), pcapConfig(oursLog, oursOut, 1))})

	p.Ping(t, false, 3)
	p.Ping(t, true, 3)
	p.UDP(t, false, 40003, 5002, "udp over IPv4\n")
	p.UDP(t, true, 40004, 5002, "udp over IPv6\n")
	p.TCP(t, false, 40001, 5001, "hello over IPv4\n")
	p.TCP(t, true, 40002, 5001, "hello over IPv6\n")
	// 6 + 6 echo packets, 2 datagrams and 2 ICMP errors, at least 6 TCP
	// segments per connection.
	const atLeast = 12 + 4 + 12
	// Wait until both files hold the traffic and have stopped growing (the
	// kernel flushes NFLOG batches within a second), then compare.
	var nRef, nOurs, stable int
	WaitFor(t, linesTimeout, "both capture files complete and stable", func() bool {
		_, r := readPcapFile(t, refOut)
		_, o := readPcapFile(t, oursOut)
		r, o = testTraffic(p, r), testTraffic(p, o)
		if len(r) == nRef && len(o) == nOurs && len(r) >= atLeast && len(o) >= atLeast {
			stable++
		} else {
			stable = 0
		}
		nRef, nOurs = len(r), len(o)
		return stable >= 60 // about 1.2 s without change
	})
	if nRef != nOurs {
		t.Errorf("the reference captured %d packets, ours %d", nRef, nOurs)
	}
	for _, d := range []*Daemon{refD, oursD} {
		if _, err := d.Stop(); err != nil {
			t.Errorf("%s: %v", d.Name, err)
		}
	}
	refHdr, refRecs := readPcapFile(t, refOut)
	oursHdr, oursRecs := readPcapFile(t, oursOut)
	// Compare the test's own traffic: the kernel also sends packets of its
	// own (IPv6 router solicitations, MLD reports from link-local or
	// unspecified addresses) at moments that can fall between the two
	// daemons' stops.
	refRecs, oursRecs = testTraffic(p, refRecs), testTraffic(p, oursRecs)
	if diff := cmp.Diff(refHdr, oursHdr); diff != "" {
		t.Errorf("headers differ (-ref +ours):\n%s", diff)
	}
	if len(refRecs) != len(oursRecs) {
		t.Fatalf("%d records in the reference's file, %d in ours", len(refRecs), len(oursRecs))
	}
	exact := 0
	for i := range refRecs {
		r, o := refRecs[i], oursRecs[i]
		if string(r.data) != string(o.data) || r.length != o.length {
			t.Errorf("record %d: ref len %d %x\nours len %d %x", i, r.length, r.data, o.length, o.data)
			continue
		}
		rt := time.Unix(int64(r.sec), int64(r.usec)*1000)
		ot := time.Unix(int64(o.sec), int64(o.usec)*1000)
		d := rt.Sub(ot).Abs()
		if d == 0 {
			exact++
		}
		// Received packets carry the kernel's timestamp. The kernel takes
		// it once per log statement, so the two groups' stamps may be a
		// few microseconds apart. Sent packets have none: each daemon
		// stamps them when it reads them.
		limit := 2 * time.Second
		if received(p, r.data) {
			limit = time.Millisecond
		}
		if d > limit {
			t.Errorf("record %d: timestamps %v and %v are %v apart (limit %v)", i, rt, ot, d, limit)
		}
	}
	t.Logf("%d records equal; %d with identical timestamps", len(refRecs), exact)
}

// testTraffic keeps the records of packets between the namespaces' own
// global addresses.
func testTraffic(p *NSPair, recs []pcapRecord) []pcapRecord {
	a4, b4, a6, b6 := p.A4.As4(), p.B4.As4(), p.A6.As16(), p.B6.As16()
	in4 := func(b []byte) bool { return string(b) == string(a4[:]) || string(b) == string(b4[:]) }
	in6 := func(b []byte) bool { return string(b) == string(a6[:]) || string(b) == string(b6[:]) }
	var out []pcapRecord
	for _, r := range recs {
		d := r.data
		switch {
		case len(d) >= 20 && d[0]>>4 == 4 && in4(d[12:16]) && in4(d[16:20]):
		case len(d) >= 40 && d[0]>>4 == 6 && in6(d[8:24]) && in6(d[24:40]):
		default:
			continue
		}
		out = append(out, r)
	}
	return out
}

// received reports whether an IP packet is addressed to namespace A.
func received(p *NSPair, pkt []byte) bool {
	switch {
	case len(pkt) >= 20 && pkt[0]>>4 == 4:
		a := p.A4.As4()
		return string(pkt[16:20]) == string(a[:])
	case len(pkt) >= 40 && pkt[0]>>4 == 6:
		a := p.A6.As16()
		return string(pkt[24:40]) == string(a[:])
	}
	return false
}

// ---------------------------------------------------------------------
// XML

var (
	xmlWhen     = regexp.MustCompile(`<when><hour>\d{1,2}</hour><min>\d\d</min><sec>\d\d</sec><wday>[1-7]</wday><day>\d{1,2}</day><month>\d{1,2}</month><year>\d{4}</year></when>`)
	xmlFileName = regexp.MustCompile(`^ulogd-flow-\d{8}-\d{6}\.xml$`)
)

// normalizeXML returns the lines of an XML output with every <when>
// element (the time each daemon formatted the line) replaced
// by <when/>, after checking its shape.
func normalizeXML(t *testing.T, text string) []string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	for i, l := range lines {
		if strings.Contains(l, "<when>") && !xmlWhen.MatchString(l) {
			t.Errorf("malformed <when> in %q", l)
		}
		lines[i] = xmlWhen.ReplaceAllString(l, "<when/>")
	}
	return lines
}

// xmlFile returns the contents of the only XML file in dir.
func xmlFile(t *testing.T, dir string) string {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join(dir, "ulogd-*.xml"))
	if len(names) != 1 {
		t.Fatalf("%s: XML files %v, want one", dir, names)
	}
	if !xmlFileName.MatchString(filepath.Base(names[0])) {
		t.Errorf("file name %s", filepath.Base(names[0]))
	}
	b, err := os.ReadFile(names[0])
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func xmlConfig(logfile, dir string, extra string) string {
	return fmt.Sprintf(`[global]
logfile=%q
loglevel=1
stack=ct1:NFCT,xml1:XML

[ct1]
%s
[xml1]
directory=%q
sync=1
`, logfile, extra, dir)
}

// TestDiffXML runs the reference and ours with ct1:NFCT,xml1:XML in the
// same namespace and compares the files element by element, once the
// formatting times are taken out.
func TestDiffXML(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		extra string
		lines int // flow lines per flow
	}{
		{"new+destroy", "event_mask=5\nhash_enable=0\n", 2},
		{"hash", "", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Kernel timestamps: DESTROY events carry their start and
			// stop, which the reference prints as <deltatime>.
			p := NewNSPair(t, NSOptions{Conntrack: true, Accounting: true, Timestamps: true})
			ref, ours := RefBinary(t), OurBinary(t)
			dir := t.TempDir()
			refDir, oursDir := filepath.Join(dir, "ref"), filepath.Join(dir, "ours")
			for _, d := range []string{refDir, oursDir} {
				if err := os.Mkdir(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			refLog, oursLog := filepath.Join(dir, "ref.log"), filepath.Join(dir, "ours.log")
			refD := StartDaemon(t, DaemonSpec{Name: "ref", Binary: ref, Netns: p.A, Logfile: refLog,
				Config: WriteConfig(t, filepath.Join(dir, "ref.conf"), xmlConfig(refLog, refDir, tc.extra))})
			oursD := StartDaemon(t, DaemonSpec{Name: "ours", Binary: ours, Netns: p.A, Logfile: oursLog,
				Config: WriteConfig(t, filepath.Join(dir, "ours.conf"), xmlConfig(oursLog, oursDir, tc.extra))})
			flows := standardTraffic(t, p)
			p.FlushConntrack(t)
			want := tc.lines*len(flows) + 2 // + the two header lines
			count := func(d string) int {
				names, _ := filepath.Glob(filepath.Join(d, "ulogd-*.xml"))
				if len(names) != 1 {
					return 0
				}
				b, _ := os.ReadFile(names[0])
				return strings.Count(string(b), "\n")
			}
			WaitFor(t, linesTimeout, "every flow in both XML files", func() bool {
				return count(refDir) >= want && count(oursDir) >= want
			})
			for _, d := range []*Daemon{refD, oursD} {
				if _, err := d.Stop(); err != nil {
					t.Errorf("%s: %v", d.Name, err)
				}
			}
			refLines := normalizeXML(t, xmlFile(t, refDir))
			oursLines := normalizeXML(t, xmlFile(t, oursDir))
			// The reference sometimes crashes at exit before
			// writing its closing tag; ours must always write it.
			if oursLines[len(oursLines)-1] != "</conntrack>" {
				t.Errorf("our file does not end with </conntrack>: %q", oursLines[len(oursLines)-1])
			}
			if n := len(oursLines) - 3; n != tc.lines*len(flows) {
				t.Errorf("%d flow lines, want %d:\n%s", n, tc.lines*len(flows), strings.Join(oursLines, "\n"))
			}
			if refLines[len(refLines)-1] != "</conntrack>" {
				oursLines = oursLines[:len(oursLines)-1]
			}
			if diff := cmp.Diff(refLines, oursLines); diff != "" {
				t.Errorf("XML differs (-ref +ours):\n%s", diff)
			}
			if n := strings.Count(strings.Join(refLines, "\n"), "<deltatime>"); n != len(flows) {
				t.Errorf("the reference printed <deltatime> %d times, want %d (one per DESTROY)", n, len(flows))
			}
		})
	}
}
