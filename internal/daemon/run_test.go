package daemon

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ulogd-go/ulogd/internal/testutil"
	_ "github.com/ulogd-go/ulogd/plugins/all"
)

// icmpEcho is an IPv4 ICMP echo request 10.99.0.1 → 10.99.0.2.
var icmpEcho = []byte{
	0x45, 0x00, 0x00, 0x1c, 0x12, 0x34, 0x00, 0x00, 0x40, 0x01, 0x00, 0x00,
	10, 99, 0, 1, 10, 99, 0, 2,
	0x08, 0x00, 0xf7, 0xf7, 0x00, 0x07, 0x00, 0x01,
}

// nufwFrame is a UNIXSOCK frame carrying pkt and no option: marker, size
// after the marker, 4 reserved bytes, payload length, payload padded to 8.
func nufwFrame(pkt []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, 0x41C90FD4)
	b = append(b, 0, 0, 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(len(pkt)))
	b = append(b, pkt...)
	for (len(b)-12)%8 != 0 {
		b = append(b, 0)
	}
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)-4))
	return b
}

// requireNobody skips the test unless it runs as root and the user nobody
// exists.
func requireNobody(t *testing.T) {
	t.Helper()
	testutil.RequireRoot(t)
	if _, err := user.Lookup("nobody"); err != nil {
		t.Skip("no user nobody:", err)
	}
}

// writeConf writes a configuration file ulogd.conf in dir.
func writeConf(t *testing.T, dir, text string) string {
	t.Helper()
	path := filepath.Join(dir, "ulogd.conf")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// waitFile waits until the file at path satisfies cond, for at most 10 s,
// woken by inotify events on its directory.
func waitFile(t *testing.T, path string, cond func(string) bool) string {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if _, err := unix.InotifyAddWatch(fd, filepath.Dir(path), unix.IN_CREATE|unix.IN_MODIFY|unix.IN_MOVED_TO); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	buf := make([]byte, 4096)
	for {
		b, _ := os.ReadFile(path)
		if cond(string(b)) {
			return string(b)
		}
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("%s: condition not met; content:\n%s", path, b)
		}
		unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, int(left/time.Millisecond)+1)
		for {
			if n, _ := unix.Read(fd, buf); n <= 0 {
				break
			}
		}
	}
}

// logBuffer is the daemon's standard error in a test: it wakes waitFor at
// every write.
type logBuffer struct {
	testutil.Buffer
	wrote chan struct{}
}

func newLogBuffer() *logBuffer { return &logBuffer{wrote: make(chan struct{}, 1)} }

func (b *logBuffer) Write(p []byte) (int, error) {
	n, err := b.Buffer.Write(p)
	select {
	case b.wrote <- struct{}{}:
	default:
	}
	return n, err
}

// waitFor waits until the log holds s, for at most 10 s.
func (b *logBuffer) waitFor(t *testing.T, s string) {
	t.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for !strings.Contains(b.String(), s) {
		select {
		case <-b.wrote:
		case <-timeout.C:
			t.Fatalf("the daemon log lacks %q:\n%s", s, b.String())
		}
	}
}

// daemonRun is an in-process daemon started by startDaemon.
type daemonRun struct {
	conf   string // the configuration file
	sigs   chan os.Signal
	cancel context.CancelFunc
	done   chan error
	stderr *logBuffer

	stopped bool
	err     error
}

// stop cancels the daemon's context and returns Run's result, or fails the
// test when Run does not return within 10 s.
func (d *daemonRun) stop(t *testing.T) error {
	t.Helper()
	if d.stopped {
		return d.err
	}
	d.stopped = true
	d.cancel()
	select {
	case d.err = <-d.done:
	case <-time.After(10 * time.Second):
		t.Error("Run did not return")
	}
	return d.err
}

// startDaemon runs Run with conf in a goroutine and returns once the
// daemon is ready (or has failed).
func startDaemon(t *testing.T, conf string) *daemonRun {
	t.Helper()
	path := writeConf(t, t.TempDir(), conf)
	ctx, cancel := context.WithCancel(context.Background())
	d := &daemonRun{conf: path, sigs: make(chan os.Signal, 1), cancel: cancel, done: make(chan error, 1), stderr: newLogBuffer()}
	ready := make(chan struct{})
	go func() {
		d.done <- Run(ctx, Options{
			ConfigFile: path, LogLevel: 1,
			Stdout: d.stderr, Stderr: d.stderr,
			Signals: d.sigs,
			Ready:   func() { close(ready) },
		})
	}()
	t.Cleanup(func() { d.stop(t) })
	select {
	case <-ready:
	case err := <-d.done:
		d.done <- err
		t.Fatalf("Run returned before it was ready: %v\n%s", err, d.stderr)
	}
	return d
}

// TestRunInProcess runs a whole daemon (UNIXSOCK → BASE → IP2STR →
// PRINTPKT → LOGEMU) in the test process: a frame becomes a line, SIGUSR1
// logs the counters, SIGHUP reopens the rotated file, and cancelling the
// context stops it cleanly and promptly.
func TestRunInProcess(t *testing.T) {
	dir := testutil.ShortTempDir(t, 0o700)
	sock := filepath.Join(dir, "u.sock")
	out := filepath.Join(dir, "emu.log")
	d := startDaemon(t, fmt.Sprintf(`[global]
stack=nuauth1:UNIXSOCK,base1:BASE,ip2str1:IP2STR,print1:PRINTPKT,emu1:LOGEMU
[nuauth1]
socket_path=%q
[emu1]
file=%q
sync=1
`, sock, out))

	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const want = "SRC=10.99.0.1 DST=10.99.0.2 LEN=28 TOS=00 PREC=0x00 TTL=64 ID=4660 PROTO=ICMP TYPE=8 CODE=0 ID=7 SEQ=1 \n"
	if _, err := c.Write(nufwFrame(icmpEcho)); err != nil {
		t.Fatal(err)
	}
	waitFile(t, out, func(s string) bool { return strings.HasSuffix(s, want) })

	d.sigs <- syscall.SIGUSR1
	d.stderr.waitFor(t, "counters instance=nuauth1 plugin=UNIXSOCK events=1 lost=0")

	if err := os.Rename(out, out+".1"); err != nil {
		t.Fatal(err)
	}
	d.sigs <- syscall.SIGHUP
	// Signals are handled one after the other: once SIGALRM is logged,
	// the reopen is done.
	d.sigs <- syscall.SIGALRM
	d.stderr.waitFor(t, "signal=\"alarm clock\"")
	if _, err := c.Write(nufwFrame(icmpEcho)); err != nil {
		t.Fatal(err)
	}
	waitFile(t, out, func(s string) bool { return strings.HasSuffix(s, want) && strings.Count(s, "\n") == 1 })

	start := time.Now()
	if err := d.stop(t); err != nil {
		t.Errorf("Run: %v", err)
	}
	// Idle, the stop takes milliseconds; a second would mean a ticker or
	// a read timeout is waited for.
	if took := time.Since(start); took > time.Second {
		t.Errorf("stop took %v", took)
	}
	log := d.stderr.String()
	lacks := slices.DeleteFunc([]string{
		"ulogd Version 2.0.9 (ulogd-go " + Version + ") (re-)starting",
		"initialization finished, entering main loop",
		"stop requested, exiting",
		"counters instance=nuauth1 plugin=UNIXSOCK events=2 lost=0",
		"counters instance=emu1 plugin=LOGEMU received=2 stopped=0 failed=0 written=2 dropped=0",
	}, func(w string) bool { return strings.Contains(log, w) })
	if len(lacks) > 0 {
		t.Errorf("daemon log lacks %q:\n%s", lacks, log)
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
}

// TestRunLogfileUnopenable: a logfile= that cannot be opened is one line
// naming the config line, and an error (exit 1), not two texts and exit 2.
func TestRunLogfileUnopenable(t *testing.T) {
	dir := t.TempDir()
	conf := writeConf(t, dir, fmt.Sprintf("[global]\nlogfile=%q\nstack=nuauth1:UNIXSOCK,base1:BASE,ip2str1:IP2STR,print1:PRINTPKT,emu1:LOGEMU\n[nuauth1]\nsocket_path=%q\n[emu1]\nfile=%q\n",
		dir+"/missing/ulogd.log", dir+"/u.sock", dir+"/emu.log"))
	var stderr testutil.Buffer
	err := Run(context.Background(), Options{ConfigFile: conf, Stdout: &stderr, Stderr: &stderr, Signals: make(chan os.Signal)})
	if err == nil {
		t.Fatal("Run succeeded")
	}
	want := fmt.Sprintf("%s:2: can't open logfile '%s/missing/ulogd.log': no such file or directory\n", conf, dir)
	if got := stderr.String(); got != want {
		t.Errorf("stderr:\n%s\nwant:\n%s", got, want)
	}
}

// TestRunUnprivileged starts a daemon without root and capabilities (in a
// private network namespace): the start fails, and the error says what is
// needed instead of a bare "operation not permitted".
func TestRunUnprivileged(t *testing.T) {
	testutil.RequireRoot(t)
	dir := testutil.ShortTempDir(t, 0o777)
	conf := writeConf(t, dir, fmt.Sprintf("[global]\nstack=log1:NFLOG,base1:BASE,ifi1:IFINDEX,ip2str1:IP2STR,print1:PRINTPKT,emu1:LOGEMU\n[log1]\ngroup=7\n[emu1]\nfile=%q\n", dir+"/emu.log"))
	cmd := helperCmd(t, "run-unprivileged", "ULOGD_TEST_CONF="+conf)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	_, runErr, _ := strings.Cut(string(out), "---\n")
	if !strings.Contains(runErr, "operation not permitted (ulogd needs to run as root or with the CAP_NET_ADMIN capability)") {
		t.Errorf("Run's error lacks the hint:\n%s", out)
	}
	if !strings.Contains(string(out), "Fatal error.") {
		t.Errorf("no fatal error reported:\n%s", out)
	}
}

// TestRunUserWarnings: after -u, what cannot work is said at start. A cgo
// test binary cannot keep CAP_NET_ADMIN (see TestDropPrivileges), so NFCT
// gets the warning; a CGO_ENABLED=0 one keeps it and must not warn. The
// output file's directory, root's and 0755, is not writable by nobody.
func TestRunUserWarnings(t *testing.T) {
	requireNobody(t)
	dir := testutil.ShortTempDir(t, 0o755)
	conf := writeConf(t, dir, fmt.Sprintf("[global]\nstack=ct1:NFCT,ip2str1:IP2STR,print1:PRINTFLOW,emu1:LOGEMU\n[emu1]\nfile=%q\n", dir+"/ct.log"))
	cmd := helperCmd(t, "run-as", "ULOGD_TEST_CONF="+conf, "ULOGD_TEST_USER=nobody")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, b)
	}
	out := string(b)
	if !strings.HasSuffix(out, "---\n<nil>\n") {
		t.Fatalf("Run failed:\n%s", out)
	}
	capWarning := "ct1 (NFCT): CAP_NET_ADMIN could not be kept after switching to user nobody (" + errCgo.Error() + "): polling, the hash-mode resync and SIGUSR2 will fail"
	cgo := cgoBinary()
	if got := strings.Contains(out, capWarning); got != cgo {
		t.Errorf("CAP_NET_ADMIN warning present %v, want %v (cgo build):\n%s", got, cgo, out)
	}
	if want := "stack 1, emu1:LOGEMU: user nobody cannot write the directory " + dir; !strings.Contains(out, want) {
		t.Errorf("no warning %q:\n%s", want, out)
	}
}

// cgoBinary reports whether this test binary is linked with cgo, in which
// case capabilities cannot be set on every thread.
func cgoBinary() bool {
	return allThreads(unix.SYS_PRCTL, unix.PR_GET_KEEPCAPS, 0, 0) == errCgo
}
