package daemon

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ulogd-go/ulogd/internal/testutil"
)

// waitCount waits until the log holds s at least n times, for at most 10 s.
func (b *logBuffer) waitCount(t *testing.T, s string, n int) {
	t.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for strings.Count(b.String(), s) < n {
		select {
		case <-b.wrote:
		case <-timeout.C:
			t.Fatalf("the daemon log holds %q fewer than %d times:\n%s", s, n, b.String())
		}
	}
}

// reloadConfs are the two configurations TestReloadUnderTraffic switches
// between: the first stack in both, and in the second a stack more on the
// same source and one on a second UNIXSOCK source.
func reloadConfs(dir string) (small, big string) {
	path := func(name string) string { return fmt.Sprintf("%q", filepath.Join(dir, name)) }
	stacks := "[global]\nloglevel=3\nstack=nuauth1:UNIXSOCK,base1:BASE,ip2str1:IP2STR,print1:PRINTPKT,emu1:LOGEMU\n"
	sections := "[nuauth1]\nsocket_path=" + path("u.sock") + "\n[emu1]\nfile=" + path("keep.log") + "\n"
	small = stacks + sections
	big = stacks +
		"stack=nuauth1:UNIXSOCK,base2:BASE,ip2str2:IP2STR,print2:PRINTPKT,emu2:LOGEMU\n" +
		"stack=nuauth2:UNIXSOCK,base3:BASE,ip2str3:IP2STR,print3:PRINTPKT,emu3:LOGEMU\n" +
		sections +
		"[nuauth2]\nsocket_path=" + path("u2.sock") + "\n[emu2]\nfile=" + path("extra.log") + "\n[emu3]\nfile=" + path("other.log") + "\n"
	return small, big
}

// TestReloadUnderTraffic: a client streams frames to a UNIXSOCK source
// while the daemon reloads 20 times, alternately adding and removing two
// stacks (one on the same source, one on a source of its own), with a
// broken file refused in the middle. The stack present throughout writes
// one line per frame: none is lost, none doubled.
func TestReloadUnderTraffic(t *testing.T) {
	dir := testutil.ShortTempDir(t, 0o700)
	small, big := reloadConfs(dir)
	d := startDaemon(t, small)
	conf := d.conf
	keep := filepath.Join(dir, "keep.log")

	c, err := net.Dial("unix", filepath.Join(dir, "u.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	frame := nufwFrame(icmpEcho)
	stop := make(chan struct{})
	progress := make(chan struct{}, 1) // every 25 frames
	var sent int
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(500 * time.Microsecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := c.Write(frame); err != nil {
				t.Errorf("write: %v", err)
				return
			}
			sent++
			if sent%25 == 0 {
				select {
				case progress <- struct{}{}:
				default:
				}
			}
		}
	}()

	for i := 1; i <= 20; i++ {
		// Frames flow between reloads as well as during them.
		select {
		case <-progress:
		default:
		}
		<-progress
		text := big
		if i%2 == 0 {
			text = small
		}
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		d.sigs <- ReloadSignal
		d.stderr.waitCount(t, "configuration reloaded", i)
		if i == 10 {
			// A file that does not build is refused; the stacks run on.
			if err := os.WriteFile(conf, []byte(strings.Replace(small, "[nuauth1]", "stack=nuauth1:UNIXSOCK,emu9:NOSUCH\n[nuauth1]", 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			d.sigs <- ReloadSignal
			d.stderr.waitFor(t, "reload refused: not even a single working plugin stack; the running configuration stays")
		}
	}
	close(stop)
	wg.Wait()
	const line = "PROTO=ICMP TYPE=8 CODE=0 ID=7 SEQ=1 \n"
	got := waitFile(t, keep, func(s string) bool { return strings.Count(s, line) >= sent })
	if n := strings.Count(got, line); n != sent {
		t.Errorf("%d frames sent, %d lines in %s", sent, n, keep)
	}
	// The stack added on the same source wrote while it ran.
	if b, _ := os.ReadFile(filepath.Join(dir, "extra.log")); !strings.Contains(string(b), line) {
		t.Errorf("the added stack wrote nothing:\n%s", b)
	}
	log := d.stderr.String()
	for _, want := range []string{
		"kept_sources=nuauth1 kept_stacks=[1]",
		"ulogd.conf:4: stack 2: can't find requested plugin NOSUCH",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("daemon log lacks %q:\n%s", want, log)
		}
	}
	if err := d.stop(t); err != nil {
		t.Errorf("Run: %v", err)
	}
	t.Logf("%d frames through 20 reloads", sent)
}

// TestReloadReopensAndUnitSendsIt: the reload signal also reopens the
// files, as SIGHUP (which systemctl reload sent before), and the systemd
// unit's ExecReload checks the file, then sends that signal.
func TestReloadReopensAndUnitSendsIt(t *testing.T) {
	dir := testutil.ShortTempDir(t, 0o700)
	small, _ := reloadConfs(dir)
	d := startDaemon(t, small)
	keep := filepath.Join(dir, "keep.log")
	c, err := net.Dial("unix", filepath.Join(dir, "u.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const line = "PROTO=ICMP TYPE=8 CODE=0 ID=7 SEQ=1 \n"
	if _, err := c.Write(nufwFrame(icmpEcho)); err != nil {
		t.Fatal(err)
	}
	waitFile(t, keep, func(s string) bool { return strings.Count(s, line) == 1 })
	if err := os.Rename(keep, keep+".1"); err != nil {
		t.Fatal(err)
	}
	d.sigs <- ReloadSignal
	// The file is unchanged: everything is kept, nothing stopped.
	d.stderr.waitFor(t, "configuration reloaded stacks=1 kept_sources=nuauth1 kept_stacks=[1] stopped=0")
	// The reopen follows the reload; signals are handled one after the
	// other: once SIGALRM is logged, it is done.
	d.sigs <- syscall.SIGALRM
	d.stderr.waitFor(t, "signal=\"alarm clock\"")
	if _, err := c.Write(nufwFrame(icmpEcho)); err != nil {
		t.Fatal(err)
	}
	waitFile(t, keep, func(s string) bool { return strings.Count(s, line) == 1 })

	b, err := os.ReadFile("../../contrib/systemd/ulogd.service")
	if err != nil {
		t.Fatal(err)
	}
	var reload []string
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "ExecReload="); ok {
			reload = append(reload, v)
		}
	}
	want := []string{"/usr/sbin/ulogd --check -c /etc/ulogd.conf", "/bin/kill -" + strings.TrimPrefix(unix.SignalName(ReloadSignal), "SIG") + " $MAINPID"}
	if !slices.Equal(reload, want) {
		t.Errorf("ExecReload lines %q, want %q", reload, want)
	}
}

// TestReloadRefusedStart: a file that builds but whose new sink or new
// source cannot start (its directory is missing) is refused too: what was
// started for it is stopped, and the running stacks go on with their
// sockets.
func TestReloadRefusedStart(t *testing.T) {
	dir := testutil.ShortTempDir(t, 0o700)
	small, big := reloadConfs(dir)
	d := startDaemon(t, small)
	c, err := net.Dial("unix", filepath.Join(dir, "u.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	keep := filepath.Join(dir, "keep.log")
	const line = "PROTO=ICMP TYPE=8 CODE=0 ID=7 SEQ=1 \n"
	for i, bad := range []struct{ file, refused string }{
		{"extra.log", "reload refused: error starting `emu2' (LOGEMU)"},
		{"u2.sock", "reload refused: error starting `nuauth2' (UNIXSOCK)"},
	} {
		text := strings.Replace(big, filepath.Join(dir, bad.file), filepath.Join(dir, "missing", bad.file), 1)
		if err := os.WriteFile(d.conf, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		d.sigs <- ReloadSignal
		d.stderr.waitFor(t, bad.refused)
		if _, err := c.Write(nufwFrame(icmpEcho)); err != nil {
			t.Fatal(err)
		}
		waitFile(t, keep, func(s string) bool { return strings.Count(s, line) == i+1 })
		for _, f := range []string{"extra.log", "other.log"} {
			if b, _ := os.ReadFile(filepath.Join(dir, f)); len(b) > 0 {
				t.Errorf("%s: the refused configuration's stack wrote %q", f, b)
			}
		}
	}
	if strings.Contains(d.stderr.String(), "configuration reloaded") {
		t.Errorf("a refused reload was applied:\n%s", d.stderr.String())
	}
}
