package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// ourNFCT starts our daemon with the canonical stack in p.A and returns
// it with the path of its output file.
func ourNFCT(t *testing.T, p *NSPair, o NFCTOptions, args ...string) (*Daemon, string) {
	t.Helper()
	bin := OurBinary(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "ours.out")
	log := filepath.Join(dir, "ours.log")
	conf := WriteConfig(t, filepath.Join(dir, "ours.conf"), CanonicalConfig(log, out, o))
	d := StartDaemon(t, DaemonSpec{Name: "ours", Binary: bin, Netns: p.A, Config: conf, Logfile: log, Args: args})
	return d, out
}

// standardTraffic makes one flow of each kind, IPv4 and IPv6, in this
// order: TCP, TCP, UDP, UDP, ICMP (3 echoes), ICMPv6 (3 echoes).
func standardTraffic(t *testing.T, p *NSPair) []Flow {
	t.Helper()
	return []Flow{
		p.TCP(t, false, 40001, 5001, "hello over IPv4\n"),
		p.TCP(t, true, 40002, 5001, "hello over IPv6\n"),
		p.UDP(t, false, 40003, 5002, "udp over IPv4\n"),
		p.UDP(t, true, 40004, 5002, "udp over IPv6\n"),
		p.Ping(t, false, 3),
		p.Ping(t, true, 3),
	}
}

// newLines is what PRINTFLOW prints for the NEW events of flows, in order.
func newLines(flows []Flow) []string {
	var want []string
	for _, f := range flows {
		want = append(want, f.PrintflowLine("NEW", 0, 0, 0, 0))
	}
	return want
}

// splitEvents separates [NEW] and [DESTROY] bodies and fails on anything
// else.
func splitEvents(t *testing.T, bodies []string) (news, destroys []string) {
	t.Helper()
	for _, b := range bodies {
		switch {
		case strings.HasPrefix(b, "[NEW] "):
			news = append(news, b)
		case strings.HasPrefix(b, "[DESTROY] "):
			destroys = append(destroys, b)
		default:
			t.Errorf("unexpected line %q", b)
		}
	}
	return news, destroys
}

// checkDestroys checks that there is exactly one DESTROY line per flow and
// no other, with the exact counters where the flow knows them (ICMP, UDP)
// and non-zero plausible counters for TCP. zero: accounting is off, every
// counter must be 0.
func checkDestroys(t *testing.T, flows []Flow, destroys []string, zero bool) {
	t.Helper()
	used := make([]bool, len(destroys))
	for _, f := range flows {
		var mine []int
		for i, d := range destroys {
			if f.Match(d) {
				mine = append(mine, i)
			}
		}
		if len(mine) != 1 {
			t.Errorf("%v: %d DESTROY lines, want 1", f, len(mine))
			continue
		}
		used[mine[0]] = true
		got := destroys[mine[0]]
		switch {
		case zero:
			if want := f.PrintflowLine("DESTROY", 0, 0, 0, 0); got != want {
				t.Errorf("%v DESTROY (accounting off):\n got %q\nwant %q", f, got, want)
			}
		case f.OrigPkts >= 0:
			if want := f.PrintflowLine("DESTROY", f.OrigPkts, f.OrigBytes, f.ReplyPkts, f.ReplyBytes); got != want {
				t.Errorf("%v DESTROY:\n got %q\nwant %q", f, got, want)
			}
		default:
			// TCP: handshake, payload and teardown; the exact count depends
			// on who closes first, so check shape and sane bounds.
			re := regexp.MustCompile("^" + regexp.QuoteMeta(f.PrintflowLine("DESTROY", 0, 0, 0, 0)) + "$")
			pat := strings.ReplaceAll(re.String(), "PKTS=0 BYTES=0", `PKTS=(\d+) BYTES=(\d+)`)
			m := regexp.MustCompile(pat).FindStringSubmatch(got)
			if m == nil {
				t.Errorf("%v DESTROY line %q does not match %s", f, got, pat)
				continue
			}
			n := make([]int, 4)
			for i := range n {
				n[i], _ = strconv.Atoi(m[i+1])
			}
			// At least SYN, ACK, data, FIN out; SYN-ACK, ACK, FIN back.
			if n[0] < 4 || n[2] < 2 || n[1] < n[0]*40 || n[3] < n[2]*40 {
				t.Errorf("%v DESTROY counters implausible (orig %d pkts %d bytes, reply %d pkts %d bytes): %q",
					f, n[0], n[1], n[2], n[3], got)
			}
		}
	}
	for i, u := range used {
		if !u {
			t.Errorf("DESTROY line for no flow of the test: %q", destroys[i])
		}
	}
}

// TestNFCTNewOnly: event_mask=1, hash_enable=0 → one exact [NEW] line per
// flow, in order, with a well-formed LOGEMU prefix.
func TestNFCTNewOnly(t *testing.T) {
	t.Parallel()
	p := NewNSPair(t, NSOptions{Conntrack: true})
	_, out := ourNFCT(t, p, NFCTOptions{EventMask: 1, HashEnable: Int(0)})
	flows := standardTraffic(t, p)
	lines := p.Barrier(t, "NEW", out)[0]
	got := Bodies(t, lines, ShortHostname(t))
	if diff := cmp.Diff(newLines(flows), got); diff != "" {
		t.Errorf("[NEW] lines (-want +got):\n%s", diff)
	}
}

// TestNFCTNewDestroyCounters: event_mask=5, hash_enable=0, accounting on →
// a [NEW] line with zero counters per flow, then after conntrack -F one
// [DESTROY] line per flow with the packets and bytes sent.
func TestNFCTNewDestroyCounters(t *testing.T) {
	t.Parallel()
	p := NewNSPair(t, NSOptions{Conntrack: true, Accounting: true, Timestamps: true})
	_, out := ourNFCT(t, p, NFCTOptions{EventMask: 5, HashEnable: Int(0)})
	flows := standardTraffic(t, p)
	lines := p.Barrier(t, "DESTROY", out)[0]
	news, destroys := splitEvents(t, Bodies(t, lines, ShortHostname(t)))
	if diff := cmp.Diff(newLines(flows), news); diff != "" {
		t.Errorf("[NEW] lines (-want +got):\n%s", diff)
	}
	checkDestroys(t, flows, destroys, false)
}

// TestNFCTHashMode: defaults (hash_enable=1, event_mask=5) → only
// [DESTROY] lines, one per flow. Once with accounting off (all counters
// 0), once with it on.
func TestNFCTHashMode(t *testing.T) {
	t.Parallel()
	for _, acct := range []bool{false, true} {
		t.Run(fmt.Sprintf("acct=%v", acct), func(t *testing.T) {
			p := NewNSPair(t, NSOptions{Conntrack: true, Accounting: acct, Timestamps: acct})
			_, out := ourNFCT(t, p, NFCTOptions{})
			flows := standardTraffic(t, p)
			lines := p.Barrier(t, "DESTROY", out)[0]
			news, destroys := splitEvents(t, Bodies(t, lines, ShortHostname(t)))
			if len(news) != 0 {
				t.Errorf("hash mode printed %d [NEW] lines, want none:\n%s", len(news), strings.Join(news, "\n"))
			}
			checkDestroys(t, flows, destroys, !acct)
		})
	}
}

// TestSIGHUPReopen: while flows are being made, the output file is renamed
// and the daemon gets SIGHUP; every flow's [NEW] line is in exactly one of
// the two files, none lost, none duplicated.
func TestSIGHUPReopen(t *testing.T) {
	t.Parallel()
	p := NewNSPair(t, NSOptions{Conntrack: true})
	d, out := ourNFCT(t, p, NFCTOptions{EventMask: 1, HashEnable: Int(0)})
	rotated := out + ".1"

	const firstPort, maxFlows = 42000, 5000
	stop := make(chan struct{})
	sent := make(chan int, 1)
	genErr := make(chan error, 1)
	go func() {
		n := 0
		defer func() { sent <- n }()
		for ; n < maxFlows; n++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := p.UDPFromGo(false, firstPort+n, 5003, []byte("x")); err != nil {
				genErr <- err
				return
			}
		}
	}()
	stopGen := func() int {
		select {
		case <-stop:
		default:
			close(stop)
		}
		return <-sent
	}
	defer func() {
		select {
		case <-stop:
		default:
			stopGen()
		}
	}()

	WaitLines(t, out, 20, linesTimeout)
	if err := os.Rename(out, rotated); err != nil {
		t.Fatal(err)
	}
	d.Signal(t, syscall.SIGHUP)
	WaitLines(t, out, 20, linesTimeout) // the reopened file fills while traffic flows
	n := stopGen()
	select {
	case err := <-genErr:
		t.Fatalf("traffic generator: %v", err)
	default:
	}
	if n >= maxFlows {
		t.Fatalf("generator hit its limit of %d flows before the reopened file had 20 lines", maxFlows)
	}
	after := p.Barrier(t, "NEW", out)[0]
	before := ReadLines(t, rotated)
	t.Logf("%d flows: %d lines before the reopen, %d after", n, len(before), len(after))

	host := ShortHostname(t)
	seen := map[int]string{}
	for name, lines := range map[string][]string{rotated: before, out: after} {
		for _, body := range Bodies(t, lines, host) {
			f := Flow{Proto: "UDP", Src: p.A4, Dst: p.B4, DPort: 5003}
			var sport int
			if _, err := fmt.Sscanf(body, "[NEW] ORIG: SRC=10.99.0.1 DST=10.99.0.2 PROTO=UDP SPT=%d ", &sport); err != nil {
				t.Errorf("%s: unexpected line %q", name, body)
				continue
			}
			f.SPort = sport
			if want := f.PrintflowLine("NEW", 0, 0, 0, 0); body != want {
				t.Errorf("%s:\n got %q\nwant %q", name, body, want)
			}
			if prev, dup := seen[sport]; dup {
				t.Errorf("flow from port %d logged twice (%s and %s)", sport, prev, name)
			}
			seen[sport] = name
		}
	}
	for i := range n {
		if _, ok := seen[firstPort+i]; !ok {
			t.Errorf("flow from port %d lost", firstPort+i)
		}
	}
	if len(seen) != n {
		t.Errorf("%d distinct flows logged, %d sent", len(seen), n)
	}
}

// TestSIGTERMPidfile: -p writes "<pid>\n"; SIGTERM → exit status 0 and the
// pid file is gone.
func TestSIGTERMPidfile(t *testing.T) {
	t.Parallel()
	p := NewNSPair(t, NSOptions{Conntrack: true})
	pidfile := filepath.Join(t.TempDir(), "ulogd.pid")
	d, _ := ourNFCT(t, p, NFCTOptions{EventMask: 1, HashEnable: Int(0)}, "-p", pidfile)
	b, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	if want := strconv.Itoa(d.Pid()) + "\n"; string(b) != want {
		t.Errorf("pid file holds %q, want %q", b, want)
	}
	code, err := d.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 {
		t.Errorf("exit status after SIGTERM = %d, want 0\n%s", code, d.Stderr())
	}
	if _, err := os.Stat(pidfile); !os.IsNotExist(err) {
		t.Errorf("pid file still there after exit (stat: %v)", err)
	}
}

// TestBrokenConfig: an unknown option in [ct1] is refused with exit status
// 1 and "<file>:<line>:" on stderr, both when starting and with --check;
// the same config without it passes --check.
func TestBrokenConfig(t *testing.T) {
	t.Parallel()
	bin := OurBinary(t)
	dir := t.TempDir()
	good := CanonicalConfig(filepath.Join(dir, "ulogd.log"), filepath.Join(dir, "out"), NFCTOptions{EventMask: 1})
	// Put the bad option right after "[ct1]" and find its line number.
	bad := strings.Replace(good, "[ct1]\n", "[ct1]\nno_such_option=1\n", 1)
	line := 0
	for i, l := range strings.Split(bad, "\n") {
		if l == "no_such_option=1" {
			line = i + 1
		}
	}
	badPath := WriteConfig(t, filepath.Join(dir, "bad.conf"), bad)
	goodPath := WriteConfig(t, filepath.Join(dir, "good.conf"), good)
	where := fmt.Sprintf("%s:%d:", badPath, line)

	for _, args := range [][]string{{"-c", badPath}, {"--check", "-c", badPath}} {
		code, stdout, stderr := RunOnce(t, bin, args...)
		if code != 1 {
			t.Errorf("ulogd %s: exit status %d, want 1\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, stdout, stderr)
		}
		if !strings.Contains(stderr, where) {
			t.Errorf("ulogd %s: stderr lacks %q:\n%s", strings.Join(args, " "), where, stderr)
		}
	}
	if code, stdout, stderr := RunOnce(t, bin, "--check", "-c", goodPath); code != 0 {
		t.Errorf("ulogd --check on a valid config: exit status %d, want 0\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}
