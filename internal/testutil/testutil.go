// Package testutil holds the small helpers that tests of many packages
// share, so that each exists once: bounded polling for state that has no
// event to wait on, the checks that skip a test when it cannot run here
// (not root, a command missing), and the file format of captured netlink
// datagrams.
//
// Unit tests that wait on time windows use testing/synctest or an
// injected clock instead; WaitFor is for state another goroutine, process
// or the kernel changes on its own schedule.
package testutil

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// PollInterval is how often Eventually and WaitFor check their condition.
const PollInterval = 10 * time.Millisecond

// Eventually checks cond every PollInterval until it returns true, for at
// most timeout, and reports whether it did. cond runs at least once.
func Eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if !time.Now().Before(deadline) {
			return false
		}
		time.Sleep(PollInterval)
	}
	return true
}

// WaitFor waits until cond holds (see Eventually) and fails t, naming
// what it waited for, when timeout passes first.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Eventually(timeout, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// RequireRoot skips t unless it runs as root (network namespaces,
// netfilter sockets, sysctls and privilege drops need it).
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root (network namespaces, netfilter sockets, privileges); run the tests as root, as .ci/run does")
	}
}

// RequireTools skips t when one of the named programs is not in PATH.
func RequireTools(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Skipf("skipping: needs %q in PATH: %v", n, err)
		}
	}
}

// AppendDatagram appends one datagram to a capture (see ReadDatagrams).
func AppendDatagram(capture, dg []byte) []byte {
	capture = binary.LittleEndian.AppendUint32(capture, uint32(len(dg)))
	return append(capture, dg...)
}

// ReadDatagrams reads a capture file written by a kernel test's capture
// mode: datagrams as received from netlink, each prefixed by its length
// (u32, little endian; the messages themselves are in host order, captured
// on amd64). It fails t when the file is missing, truncated or empty.
func ReadDatagrams(t testing.TB, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("captured datagrams: %v (regenerate them as root with the capturing package's TestCapture and its -capture flag)", err)
	}
	var out [][]byte
	for len(b) >= 4 {
		n := int(binary.LittleEndian.Uint32(b))
		if 4+n > len(b) {
			t.Fatalf("%s: truncated", path)
		}
		out = append(out, b[4:4+n])
		b = b[4+n:]
	}
	if len(b) != 0 || len(out) == 0 {
		t.Fatalf("%s: no datagram, or a truncated length", path)
	}
	return out
}

// ReadFiles returns the contents of the files matching pattern (a
// filepath.Glob pattern), by base name. It fails t when none matches.
func ReadFiles(t testing.TB, pattern string) map[string][]byte {
	t.Helper()
	names, err := filepath.Glob(pattern)
	if err != nil || len(names) == 0 {
		t.Fatalf("no file matches %s: %v", pattern, err)
	}
	out := map[string][]byte{}
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(n)] = b
	}
	return out
}

// ShortTempDir is a temporary directory, removed at cleanup, with a short
// path (unix socket paths are limited to 107 bytes, which t.TempDir's
// names can exceed) and the given mode (0755 lets a dropped user in).
func ShortTempDir(t testing.TB, mode os.FileMode) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ulogd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
	return dir
}
