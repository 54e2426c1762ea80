package e2e

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ulogd-go/ulogd/internal/nl/nfacct"
	"github.com/ulogd-go/ulogd/internal/nl/nfacct/nfaccttest"
)

// nfacctRefPlugin is the reference's NFACCT plugin (Debian ulogd2).
const nfacctRefPlugin = "/usr/lib/x86_64-linux-gnu/ulogd/ulogd_inpflow_NFACCT.so"

// nfacctObjects creates the accounting objects of the NFACCT tests in
// namespace ns: "alpha" and "beta" with the nfacct tool, alpha counting
// the namespace's sent IPv4 packets (3 pings to 127.0.0.1: 6 packets of
// 84 bytes), and "big" with counters beyond 32 bits.
func nfacctObjects(t *testing.T, p *NSPair, ns string) {
	t.Helper()
	p.Exec(t, ns, "nfacct", "add", "alpha")
	p.Exec(t, ns, "nfacct", "add", "beta")
	f, err := os.Open(filepath.Join("/var/run/netns", ns))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := nfacct.Dial(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Add(nfacct.Object{Name: "big", Pkts: 1<<40 + 5, Bytes: 1<<63 + 7}); err != nil {
		t.Fatal(err)
	}
	if err := nfaccttest.Count(int(f.Fd()), "alpha"); err != nil {
		t.Fatal(err)
	}
	p.Exec(t, ns, "ping", "-c", "3", "-i", "0.01", "-q", "127.0.0.1")
	if out := p.Exec(t, ns, "nfacct", "get", "alpha"); !strings.Contains(out, "pkts = 00000000000000000006") {
		t.Fatalf("nfacct get alpha: %s", out)
	}
}

// nfacctConfig is one NFACCT instance shared by four stacks, one per sink
// that writes accounting records, polling every second without zeroing.
func nfacctConfig(logfile, dir string) string {
	return fmt.Sprintf(`[global]
logfile=%q
loglevel=3
plugin="%s"
plugin="/usr/lib/x86_64-linux-gnu/ulogd/ulogd_output_GPRINT.so"
plugin="/usr/lib/x86_64-linux-gnu/ulogd/ulogd_output_OPRINT.so"
plugin="/usr/lib/x86_64-linux-gnu/ulogd/ulogd_output_JSON.so"
plugin="/usr/lib/x86_64-linux-gnu/ulogd/ulogd_output_XML.so"
stack=acct1:NFACCT,gp1:GPRINT
stack=acct1:NFACCT,op1:OPRINT
stack=acct1:NFACCT,js1:JSON
stack=acct1:NFACCT,xml1:XML

[acct1]
pollinterval=1
zerocounter=0
timestamp=1

[gp1]
file="%[3]s/gprint.log"
sync=1

[op1]
file="%[3]s/oprint.log"
sync=1

[js1]
file="%[3]s/json.log"
sync=1

[xml1]
directory="%[3]s"
sync=1
`, logfile, nfacctRefPlugin, dir)
}

var (
	jsonTime   = regexp.MustCompile(`"timestamp": "[^"]*", |"oob\.time\.(sec|usec)": \d+(, )?`)
	xmlTime    = regexp.MustCompile(`<hour>.*</year>`)
	objectName = regexp.MustCompile(`sum\.name"?[=:] ?"?([a-z]+)`)
)

// signedJSON writes the integers of a JSON line above 2^63-1 as the
// reference does (compat.md J2): negative.
func signedJSON(line string) string {
	return regexp.MustCompile(`: (\d{19,20})\b`).ReplaceAllStringFunc(line, func(m string) string {
		v, err := strconv.ParseUint(m[2:], 10, 64)
		if err != nil || v <= math.MaxInt64 {
			return m
		}
		return ": " + strconv.FormatInt(int64(v), 10)
	})
}

// firstPoll returns the lines of a sink's first poll: its first n records
// (n objects), each record's lines joined.
func firstPoll(t *testing.T, kind, file string, n int) []string {
	t.Helper()
	var recs []string
	WaitFor(t, linesTimeout, fmt.Sprintf("%d records in %s", 2*n, file), func() bool {
		recs = recs[:0]
		lines := ReadLines(t, file)
		switch kind {
		case "oprint":
			for _, r := range parseRecords(t, fmtOPRINT, lines) {
				recs = append(recs, r.String())
			}
		case "xml":
			for _, l := range lines {
				if strings.HasPrefix(l, "<obj>") {
					recs = append(recs, l)
				}
			}
		default:
			recs = lines
		}
		return len(recs) >= 2*n // a second poll: the first one is complete
	})
	return recs[:n]
}

// TestNFACCTDiff runs the reference and ulogd-go in one namespace on the
// same accounting objects (polled without zeroing, so both read the same
// counters) and compares what GPRINT, OPRINT, JSON and XML write for the
// first poll. Times differ between the daemons and are compared by shape:
// the reference gives real ones to its first stack only (compat.md A1),
// ulogd-go to every stack.
func TestNFACCTDiff(t *testing.T) {
	RequireRoot(t)
	RequireTools(t, "nfacct", "ping")
	refBin, ours := RefBinary(t), OurBinary(t)
	if _, err := os.Stat(nfacctRefPlugin); err != nil {
		t.Skipf("reference NFACCT plugin missing: %v", err)
	}
	p := NewNSPair(t, NSOptions{})
	nfacctObjects(t, p, p.A)
	dirs := map[bool]string{}
	for _, ref := range []bool{true, false} {
		name, bin := "ours", ours
		if ref {
			name, bin = "ref", refBin
		}
		dir := filepath.Join(t.TempDir(), name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		dirs[ref] = dir
		logfile := filepath.Join(dir, "ulogd.log")
		conf := WriteConfig(t, filepath.Join(dir, "ulogd.conf"), nfacctConfig(logfile, dir))
		StartDaemon(t, DaemonSpec{Name: name, Binary: bin, Netns: p.A, Config: conf, Logfile: logfile})
	}
	const objects = 3
	for _, kind := range []string{"gprint", "oprint", "json", "xml"} {
		got := map[bool][]string{}
		for ref, dir := range dirs {
			file := filepath.Join(dir, kind+".log")
			if kind == "xml" {
				m, _ := filepath.Glob(filepath.Join(dir, "ulogd-sum-*.xml"))
				if len(m) != 1 {
					t.Fatalf("%s: XML files %v, want one ulogd-sum-*.xml", dir, m)
				}
				file = m[0]
			}
			recs := firstPoll(t, kind, file, objects)
			for i, r := range recs {
				// The reference stamps only its first stack (GPRINT).
				stamped := !ref || kind == "gprint"
				switch kind {
				case "gprint", "oprint":
					sec := regexp.MustCompile(`oob\.time\.sec=(\d+)`).FindStringSubmatch(r)
					if sec == nil || (sec[1] != "0") != stamped {
						t.Errorf("%s %s record %d: %q: want oob.time.sec stamped=%v", map[bool]string{true: "ref", false: "ours"}[ref], kind, i, r, stamped)
					}
					r = regexp.MustCompile(`oob\.time\.(sec|usec)=\d+`).ReplaceAllString(r, "oob.time.$1=T")
				case "json":
					if strings.Contains(r, `"timestamp": "1970-01-01`) == stamped {
						t.Errorf("json record %d (ref=%v): %q: want a real timestamp=%v", i, ref, r, stamped)
					}
					r = jsonTime.ReplaceAllString(r, "")
					if !ref {
						r = signedJSON(r)
					}
				case "xml":
					if !xmlTime.MatchString(r) {
						t.Errorf("xml record %d (ref=%v): no time in %q", i, ref, r)
					}
					r = xmlTime.ReplaceAllString(r, "T")
				}
				got[ref] = append(got[ref], r)
			}
		}
		if diff := cmp.Diff(got[true], got[false]); diff != "" {
			t.Errorf("%s: first poll (-ref +ours):\n%s", kind, diff)
		}
		names := []string{}
		for _, r := range got[false] {
			if m := objectName.FindStringSubmatch(r); m != nil {
				names = append(names, m[1])
			} else if strings.HasPrefix(r, "<obj>") {
				names = append(names, strings.TrimPrefix(r[:strings.Index(r, "</name>")], "<obj><name>"))
			}
		}
		if diff := cmp.Diff([]string{"alpha", "beta", "big"}, names); diff != "" {
			t.Errorf("%s: objects (-want +got):\n%s", kind, diff)
		}
		if kind == "gprint" && !strings.Contains(got[false][0], "sum.name=alpha,sum.pkts=6,sum.bytes=504,") {
			t.Errorf("gprint: alpha's counters: %q", got[false][0])
		}
	}
}

// TestNFACCTSIGUSR2Zero: with an hour-long poll interval, SIGUSR2 to the
// daemon polls at once, and zerocounter=1 makes each poll report the
// packets since the previous one.
func TestNFACCTSIGUSR2Zero(t *testing.T) {
	RequireRoot(t)
	RequireTools(t, "nfacct", "ping")
	p := NewNSPair(t, NSOptions{})
	nfacctObjects(t, p, p.A) // alpha: 6 packets, 504 bytes
	dir := t.TempDir()
	logfile, out := filepath.Join(dir, "ulogd.log"), filepath.Join(dir, "gprint.log")
	conf := WriteConfig(t, filepath.Join(dir, "ulogd.conf"), fmt.Sprintf(`[global]
logfile=%q
loglevel=3
stack=acct1:NFACCT,gp1:GPRINT

[acct1]
pollinterval=3600

[gp1]
file=%q
sync=1
`, logfile, out))
	d := StartDaemon(t, DaemonSpec{Name: "ours", Binary: OurBinary(t), Netns: p.A, Config: conf, Logfile: logfile})
	d.Signal(t, syscall.SIGUSR2)
	lines := WaitLines(t, out, 3, linesTimeout)
	want := []string{
		"sum.name=alpha,sum.pkts=6,sum.bytes=504",
		"sum.name=beta,sum.pkts=0,sum.bytes=0",
		"sum.name=big,sum.pkts=1099511627781,sum.bytes=9223372036854775815",
	}
	if diff := cmp.Diff(want, lines); diff != "" {
		t.Fatalf("first SIGUSR2 poll (-want +got):\n%s", diff)
	}
	p.Exec(t, p.A, "ping", "-c", "2", "-i", "0.01", "-q", "127.0.0.1")
	d.Signal(t, syscall.SIGUSR2)
	lines = WaitLines(t, out, 6, linesTimeout)
	want = []string{"sum.name=alpha,sum.pkts=4,sum.bytes=336", "sum.name=beta,sum.pkts=0,sum.bytes=0", "sum.name=big,sum.pkts=0,sum.bytes=0"}
	if diff := cmp.Diff(want, lines[3:]); diff != "" {
		t.Fatalf("second SIGUSR2 poll (-want +got):\n%s", diff)
	}
}
