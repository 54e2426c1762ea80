package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ulogd-go/ulogd/internal/testutil"
)

// These tests run the real program, built once with CGO_ENABLED=0 as it
// is shipped (the runtime sets capabilities on every thread only
// without cgo).

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// ulogdBinary returns the path of the built program.
func ulogdBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "ulogd-bin-"); buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "ulogd")
		cmd := exec.Command("go", "build", "-o", binPath, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// notifySocket listens where the daemon sends sd_notify messages; ready
// waits for READY=1.
type notifySocket struct {
	path string
	c    *net.UnixConn
}

func listenNotify(t *testing.T, dir string) *notifySocket {
	t.Helper()
	path := filepath.Join(dir, "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := os.Chmod(path, 0o777); err != nil { // as systemd's: for -u
		t.Fatal(err)
	}
	return &notifySocket{path: path, c: c}
}

func (n *notifySocket) ready(t *testing.T) {
	t.Helper()
	n.c.SetReadDeadline(time.Now().Add(20 * time.Second))
	buf := make([]byte, 512)
	for {
		k, err := n.c.Read(buf)
		if err != nil {
			t.Fatalf("waiting for READY=1: %v", err)
		}
		if strings.Contains(string(buf[:k]), "READY=1") {
			return
		}
	}
}

// unixsockConf is a UNIXSOCK → LOGEMU configuration in dir.
func unixsockConf(t *testing.T, dir string) string {
	t.Helper()
	conf := filepath.Join(dir, "ulogd.conf")
	text := fmt.Sprintf("[global]\nstack=nuauth1:UNIXSOCK,base1:BASE,ip2str1:IP2STR,print1:PRINTPKT,emu1:LOGEMU\n[nuauth1]\nsocket_path=%q\n[emu1]\nfile=%q\n",
		dir+"/u.sock", dir+"/emu.log")
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return conf
}

// waitExit waits for process pid (not a child: a pidfd) to exit and
// returns how long that took.
func waitExit(t *testing.T, pid int, timeout time.Duration) time.Duration {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatalf("pidfd_open %d: %v", pid, err)
	}
	defer unix.Close(fd)
	start := time.Now()
	if err := unix.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, int(timeout/time.Millisecond))
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			t.Fatalf("process %d did not exit within %v (%v)", pid, timeout, err)
		}
		return time.Since(start)
	}
}

// TestDaemonMode starts the program with -d and relative paths: the
// daemon's command line names each option once, with absolute paths; it
// reports readiness, and SIGTERM ends it promptly, removing the pid file.
func TestDaemonMode(t *testing.T) {
	bin := ulogdBinary(t)
	dir := testutil.ShortTempDir(t, 0o755)
	unixsockConf(t, dir)
	n := listenNotify(t, dir)
	cmd := exec.Command(bin, "-d", "-c", "ulogd.conf", "-p", "ulogd.pid")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+n.path)
	if out, err := cmd.CombinedOutput(); err != nil || len(out) != 0 {
		t.Fatalf("parent: %v, output %q", err, out)
	}
	n.ready(t)
	b, err := os.ReadFile(filepath.Join(dir, "ulogd.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid == cmd.Process.Pid {
		t.Fatalf("pid file %q (parent %d)", b, cmd.Process.Pid)
	}
	cl, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(cl), "\x00"), "\x00")
	want := []string{bin, "-d", "--configfile=" + dir + "/ulogd.conf", "--pidfile=" + dir + "/ulogd.pid"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("daemon's command line %q, want %q", got, want)
	}
	// Idle, the daemon exits within milliseconds; a second would mean
	// it waits on a ticker or a read timeout.
	if took := waitExit(t, pid, 10*time.Second); took > time.Second {
		t.Errorf("SIGTERM: exit took %v", took)
	}
	if _, err := os.Stat(filepath.Join(dir, "ulogd.pid")); !os.IsNotExist(err) {
		t.Errorf("pid file left behind: %v", err)
	}
}

// TestDropKeepsNetAdmin runs the daemon with -u nobody in a private
// network namespace (NFCT, which needs CAP_NET_ADMIN for polling, SIGUSR2
// and the resync): after the switch every thread has CAP_NET_ADMIN,
// effective and permitted, and no other capability.
func TestDropKeepsNetAdmin(t *testing.T) {
	testutil.RequireRoot(t)
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody:", err)
	}
	bin := ulogdBinary(t)
	dir := testutil.ShortTempDir(t, 0o755)
	if err := os.Chmod(dir, 0o777); err != nil { // the reopen as nobody
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "ulogd.conf")
	text := fmt.Sprintf("[global]\nstack=ct1:NFCT,ip2str1:IP2STR,print1:PRINTFLOW,emu1:LOGEMU\n[emu1]\nfile=%q\n", dir+"/ct.log")
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	n := listenNotify(t, dir)
	var stderr strings.Builder
	cmd := exec.Command(bin, "-u", "nobody", "-c", conf)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+n.path)
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		if err := <-done; err != nil {
			t.Errorf("daemon: %v\n%s", err, stderr.String())
		}
		if strings.Contains(stderr.String(), "CAP_NET_ADMIN") {
			t.Errorf("daemon warned:\n%s", stderr.String())
		}
	}()
	n.ready(t)
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", cmd.Process.Pid, task.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, ln := range strings.Split(string(st), "\n") {
			k, v, _ := strings.Cut(ln, ":\t")
			want := map[string]string{
				"Uid": strings.Repeat(nobody.Uid+"\t", 3) + nobody.Uid, "CapInh": "0000000000000000",
				"CapPrm": "0000000000001000", "CapEff": "0000000000001000", "CapAmb": "0000000000000000",
			}[k]
			if want != "" && v != want {
				t.Errorf("thread %s: %s %s, want %s", task.Name(), k, v, want)
			}
		}
	}
}
