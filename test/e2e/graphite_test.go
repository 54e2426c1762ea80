package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ulogd-go/ulogd/internal/carbontest"
)

// TestGraphiteCarbonRestart: NFACCT polls every second with zerocounter=1
// and GRAPHITE sends each poll to a real Carbon in the daemon's namespace.
// Carbon is restarted while the daemon polls, and packets are counted
// while it is down: once it is back, the per-poll values in its whisper
// files add up to exactly the packets sent, and the poll made while it was
// down is there with its own time.
func TestGraphiteCarbonRestart(t *testing.T) {
	RequireRoot(t)
	RequireTools(t, "nfacct", "ping")
	carbontest.Require(t)
	p := NewNSPair(t, NSOptions{})
	nfacctObjects(t, p, p.A) // alpha: 6 packets, 504 bytes so far
	c := carbontest.StartIn(t, p.A)
	dir := t.TempDir()
	logfile := filepath.Join(dir, "ulogd.log")
	conf := WriteConfig(t, filepath.Join(dir, "ulogd.conf"), fmt.Sprintf(`[global]
logfile=%q
loglevel=3
stack=acct1:NFACCT,graphite1:GRAPHITE

[acct1]
pollinterval=1
zerocounter=1
timestamp=1

[graphite1]
host="127.0.0.1"
port="%d"
prefix="e2e.nfacct"
`, logfile, c.Port))
	d := StartDaemon(t, DaemonSpec{Name: "ours", Binary: OurBinary(t), Netns: p.A, Config: conf, Logfile: logfile})

	sum := func(metric string) (total float64, n int) {
		for _, v := range c.Points(t, metric) {
			total += v
			n++
		}
		return total, n
	}
	c.WaitFor(t, "the first poll's 6 packets of alpha", func() bool {
		s, _ := sum("e2e.nfacct.alpha.pkts")
		return s == 6
	})
	c.WaitFor(t, "big's 64-bit packet count", func() bool { s, _ := sum("e2e.nfacct.big.pkts"); return s == 1<<40+5 })

	c.Stop(t)
	down := time.Now().Unix()
	p.Exec(t, p.A, "ping", "-c", "2", "-i", "0.01", "-q", "127.0.0.1") // 4 packets, 336 bytes
	// Let at least one poll take them while Carbon is down.
	WaitFor(t, 5*time.Second, "a poll while Carbon is down", func() bool { return time.Now().Unix() >= down+2 })
	c.Restart(t)
	up := time.Now().Unix()
	c.WaitFor(t, "alpha's 10 packets in all", func() bool { s, _ := sum("e2e.nfacct.alpha.pkts"); return s == 10 })
	c.WaitFor(t, "alpha's 840 bytes in all", func() bool { s, _ := sum("e2e.nfacct.alpha.bytes"); return s == 840 })
	// The ping's packets may fall into one poll or be split across two:
	// the points stamped while Carbon was down add up to the 4.
	var during float64
	for at, v := range c.Points(t, "e2e.nfacct.alpha.pkts") {
		if at >= down && at < up {
			during += v
		}
	}
	if during != 4 {
		t.Errorf("points stamped while Carbon was down (%d-%d) add up to %v packets, want 4: %v", down, up, during, c.Points(t, "e2e.nfacct.alpha.pkts"))
	}
	// Polls go on after the reconnection.
	_, n := sum("e2e.nfacct.beta.pkts")
	c.WaitFor(t, "more polls of beta", func() bool { _, m := sum("e2e.nfacct.beta.pkts"); return m >= n+2 })
	if code, err := d.Stop(); code != 0 || err != nil {
		t.Errorf("exit %d, %v", code, err)
	}
	if b, _ := os.ReadFile(logfile); len(b) == 0 {
		t.Error("empty daemon log")
	}
}

// lineServer accepts connections in namespace ns and collects the lines
// they send.
type lineServer struct {
	l     net.Listener
	mu    sync.Mutex
	lines []string
}

func newLineServer(t *testing.T, ns string) *lineServer {
	t.Helper()
	s := &lineServer{}
	if err := InNetns(ns, func() (err error) {
		s.l, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.l.Close() })
	go func() {
		for {
			c, err := s.l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					s.mu.Lock()
					s.lines = append(s.lines, sc.Text())
					s.mu.Unlock()
				}
			}()
		}
	}()
	return s
}

func (s *lineServer) port() int { return s.l.Addr().(*net.TCPAddr).Port }

// first waits for n lines and returns them.
func (s *lineServer) first(t *testing.T, n int) []string {
	t.Helper()
	var got []string
	WaitFor(t, linesTimeout, fmt.Sprintf("%d plaintext lines", n), func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		got = append([]string(nil), s.lines...)
		return len(got) >= n
	})
	return got[:n]
}

// TestGraphiteDiff: the reference's GRAPHITE and ours, behind NFACCT on
// the same objects (no zeroing), send the same plaintext lines for the
// first poll; the times, which are each daemon's poll time, are compared
// by range.
func TestGraphiteDiff(t *testing.T) {
	RequireRoot(t)
	RequireTools(t, "nfacct", "ping")
	refBin, ours := RefBinary(t), OurBinary(t)
	const refGraphite = "/usr/lib/x86_64-linux-gnu/ulogd/ulogd_output_GRAPHITE.so"
	if _, err := os.Stat(refGraphite); err != nil {
		t.Skipf("reference GRAPHITE plugin missing: %v", err)
	}
	p := NewNSPair(t, NSOptions{})
	nfacctObjects(t, p, p.A)
	start := time.Now().Unix()
	got := map[string][]string{}
	servers := map[string]*lineServer{}
	for _, name := range []string{"ref", "ours"} {
		bin := map[string]string{"ref": refBin, "ours": ours}[name]
		servers[name] = newLineServer(t, p.A)
		dir := filepath.Join(t.TempDir(), name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		logfile := filepath.Join(dir, "ulogd.log")
		conf := WriteConfig(t, filepath.Join(dir, "ulogd.conf"), fmt.Sprintf(`[global]
logfile=%q
loglevel=3
plugin="%s"
plugin="%s"
stack=acct1:NFACCT,graphite1:GRAPHITE

[acct1]
pollinterval=1
zerocounter=0
timestamp=1

[graphite1]
host="127.0.0.1"
port="%d"
prefix="netfilter.nfacct"
`, logfile, nfacctRefPlugin, refGraphite, servers[name].port()))
		StartDaemon(t, DaemonSpec{Name: name, Binary: bin, Netns: p.A, Config: conf, Logfile: logfile})
	}
	for name, s := range servers {
		for _, l := range s.first(t, 6) {
			f := strings.Fields(l)
			if len(f) != 3 {
				t.Fatalf("%s: line %q", name, l)
			}
			ts, err := strconv.ParseInt(f[2], 10, 64)
			if err != nil || ts < start || ts > time.Now().Unix() {
				t.Errorf("%s: line %q: time not within the test", name, l)
			}
			got[name] = append(got[name], f[0]+" "+f[1])
		}
	}
	want := []string{
		"netfilter.nfacct.alpha.pkts 6", "netfilter.nfacct.alpha.bytes 504",
		"netfilter.nfacct.beta.pkts 0", "netfilter.nfacct.beta.bytes 0",
		"netfilter.nfacct.big.pkts 1099511627781", "netfilter.nfacct.big.bytes 9223372036854775815",
	}
	for name, lines := range got {
		if diff := cmp.Diff(want, lines); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
}
