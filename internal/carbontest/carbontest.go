// Package carbontest runs a real Carbon (carbon-cache from Debian's
// graphite-carbon) for tests: a private storage directory, a plaintext
// receiver on a loopback port, one-second whisper resolution, and the
// stored values read back with whisper-fetch (python3-whisper).
//
//	c := carbontest.Start(t)           // skips when carbon-cache is missing
//	... send "a.b.pkts 3 1796597966\n" to c.Addr() ...
//	c.WaitPoint(t, "a.b.pkts", 1796597966, 3)
//	c.Restart(t)                       // same port, same storage
package carbontest

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ulogd-go/ulogd/internal/testutil"
)

// Timeouts of the bounded waits (polling, no sleeps to synchronise).
const (
	StartTimeout = 30 * time.Second // carbon-cache accepts connections
	PointTimeout = 15 * time.Second // a sent value is in its whisper file
	stopTimeout  = 15 * time.Second
	pollEvery    = 50 * time.Millisecond
)

// Carbon is a running carbon-cache.
type Carbon struct {
	Dir   string // storage, configuration and logs
	Port  int    // plaintext (line) receiver on 127.0.0.1
	Netns string // the network namespace it runs in ("": the test's)

	mu  sync.Mutex
	cmd *exec.Cmd
	out *bytes.Buffer
	ext chan struct{} // closed when cmd has exited
}

// Require skips t unless carbon-cache and whisper-fetch are installed.
func Require(t testing.TB) {
	t.Helper()
	for _, n := range []string{"carbon-cache", "whisper-fetch"} {
		if _, err := exec.LookPath(n); err != nil {
			t.Skipf("needs %s (Debian packages graphite-carbon, python3-whisper): %v", n, err)
		}
	}
}

// Start configures and starts a carbon-cache on a free loopback port, and
// stops it when t ends.
func Start(t testing.TB) *Carbon { return StartIn(t, "") }

// StartIn is Start inside the named network namespace (ip netns exec),
// whose loopback must be up; "" is the test's own.
func StartIn(t testing.TB, netns string) *Carbon {
	t.Helper()
	Require(t)
	c := &Carbon{Dir: t.TempDir(), Port: testutil.FreePort(t), Netns: netns}
	if err := os.MkdirAll(filepath.Join(c.Dir, "whisper"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`[cache]
STORAGE_DIR = %[1]s/
LOCAL_DATA_DIR = %[1]s/whisper/
WHITELISTS_DIR = %[1]s/
CONF_DIR = %[1]s/
LOG_DIR = %[1]s/
PID_DIR = %[1]s/
DATABASE = whisper
ENABLE_LOGROTATION = False
ENABLE_TAGS = False
MAX_CACHE_SIZE = inf
MAX_UPDATES_PER_SECOND = inf
MAX_CREATES_PER_MINUTE = inf
LINE_RECEIVER_INTERFACE = 127.0.0.1
LINE_RECEIVER_PORT = %[2]d
ENABLE_UDP_LISTENER = False
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_PORT = 0
CACHE_QUERY_INTERFACE = 127.0.0.1
CACHE_QUERY_PORT = 0
LOG_UPDATES = False
LOG_CREATES = True
WHISPER_AUTOFLUSH = True
`, c.Dir, c.Port)
	schemas := "[all]\npattern = .*\nretentions = 1s:1h\n"
	for name, text := range map[string]string{"carbon.conf": conf, "storage-schemas.conf": schemas} {
		if err := os.WriteFile(filepath.Join(c.Dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c.start(t)
	t.Cleanup(func() { c.Stop(t) })
	return c
}

// Addr is the plaintext receiver's address.
func (c *Carbon) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Port)) }

func (c *Carbon) start(t testing.TB) {
	t.Helper()
	c.mu.Lock()
	out := &bytes.Buffer{}
	args := []string{"carbon-cache", "--config=" + filepath.Join(c.Dir, "carbon.conf"),
		"--pidfile=" + filepath.Join(c.Dir, "carbon.pid"), "--logdir=" + c.Dir, "--nodaemon", "start"}
	if c.Netns != "" {
		// ip netns exec execs carbon-cache: the pid is carbon's.
		args = append([]string{"ip", "netns", "exec", c.Netns}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = c.Dir
	cmd.Stdout, cmd.Stderr = lockedWriter{&c.mu, out}, lockedWriter{&c.mu, out}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	os.Remove(filepath.Join(c.Dir, "carbon.pid")) // a stale pid file stops twistd
	if err := cmd.Start(); err != nil {
		c.mu.Unlock()
		t.Fatalf("carbon-cache: %v", err)
	}
	ext := make(chan struct{})
	go func() { cmd.Wait(); close(ext) }()
	c.cmd, c.out, c.ext = cmd, out, ext
	c.mu.Unlock()
	// Listening: twistd logs the receiver's port (no dial: the test may
	// run in another namespace).
	ready := fmt.Sprintf("CarbonReceiverFactory starting on %d", c.Port)
	deadline := time.Now().Add(StartTimeout)
	for {
		if strings.Contains(c.Output(), ready) {
			return
		}
		select {
		case <-ext:
			t.Fatalf("carbon-cache exited at start:\n%s", c.Output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("carbon-cache not listening on %s after %v:\n%s", c.Addr(), StartTimeout, c.Output())
		}
		time.Sleep(pollEvery)
	}
}

// Output returns what carbon-cache printed so far (its log).
func (c *Carbon) Output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.out == nil {
		return ""
	}
	return c.out.String()
}

// Stop terminates carbon-cache (SIGTERM: it writes its cache out first)
// and waits for it. Stopping a stopped Carbon does nothing.
func (c *Carbon) Stop(t testing.TB) {
	t.Helper()
	c.mu.Lock()
	cmd, ext := c.cmd, c.ext
	c.cmd = nil
	c.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-ext:
	case <-time.After(stopTimeout):
		cmd.Process.Kill()
		<-ext
		t.Errorf("carbon-cache ignored SIGTERM for %v", stopTimeout)
	}
}

// Restart stops carbon-cache and starts it again on the same port with
// the same storage.
func (c *Carbon) Restart(t testing.TB) {
	t.Helper()
	c.Stop(t)
	c.start(t)
}

// Points returns the stored values of metric (a.b.c) from the last hour,
// by timestamp; empty when the metric has no file yet.
func (c *Carbon) Points(t testing.TB, metric string) map[int64]float64 {
	t.Helper()
	path := filepath.Join(c.Dir, "whisper", strings.ReplaceAll(strings.TrimLeft(metric, "."), ".", "/")+".wsp")
	if _, err := os.Stat(path); err != nil {
		return nil
	}
	from := time.Now().Add(-59 * time.Minute).Unix()
	out, err := exec.Command("whisper-fetch", "--from="+strconv.FormatInt(from, 10), path).Output()
	if err != nil {
		t.Fatalf("whisper-fetch %s: %v", path, err)
	}
	pts := map[int64]float64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		ts, v, ok := strings.Cut(sc.Text(), "\t")
		if !ok || v == "None" {
			continue
		}
		n, err1 := strconv.ParseInt(ts, 10, 64)
		f, err2 := strconv.ParseFloat(v, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("whisper-fetch line %q", sc.Text())
		}
		pts[n] = f
	}
	return pts
}

// WaitPoint waits until metric's value at ts is want.
func (c *Carbon) WaitPoint(t testing.TB, metric string, ts int64, want float64) {
	t.Helper()
	c.WaitFor(t, fmt.Sprintf("%s = %v at %d", metric, want, ts), func() bool {
		v, ok := c.Points(t, metric)[ts]
		return ok && v == want
	})
}

// WaitFor polls cond until it holds, failing t after PointTimeout.
func (c *Carbon) WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(PointTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("carbon: no %s after %v; carbon log:\n%s", what, PointTimeout, c.Output())
		}
		time.Sleep(pollEvery)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
