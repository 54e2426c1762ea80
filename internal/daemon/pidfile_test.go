package daemon

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestPidFileCreateRewriteRemove(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "ulogd.pid")
	l, stderr, _ := testLog(t)
	pf, err := CreatePidFile(path, l.Logger())
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%d\n", os.Getpid())
	if got := readFile(t, path); got != want {
		t.Errorf("content %q, want %q", got, want)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", fi.Mode().Perm())
	}
	if pf.Path() != path {
		t.Errorf("Path() = %q", pf.Path())
	}
	fl, err := unixGetFlags(pf)
	if err != nil || fl&syscall.FD_CLOEXEC == 0 {
		t.Errorf("descriptor not close-on-exec (flags %#x, %v)", fl, err)
	}

	// Rewrite truncates to the new content.
	os.WriteFile(path, []byte("123456789012345\n"), 0o644) // same inode
	if err := pf.Rewrite(); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path); got != want {
		t.Errorf("after Rewrite %q, want %q", got, want)
	}
	if err := pf.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("pid file still there: %v", err)
	}
	if err := pf.Remove(); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	if stderr.String() != "" {
		t.Errorf("unexpected log: %q", stderr.String())
	}
}

func unixGetFlags(pf *PidFile) (int, error) {
	r, _, e := syscall.Syscall(syscall.SYS_FCNTL, pf.f.Fd(), syscall.F_GETFD, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

func TestPidFileRemoveOnlyOurs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ulogd.pid")
	pf, err := CreatePidFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path, path+".moved"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := pf.Remove(); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path); got != "1\n" {
		t.Errorf("someone else's pid file touched: %q", got)
	}
}

// TestPidFileLocked holds the pid file in another process (locks belong to
// processes, or to open file descriptions, never to a path).
func TestPidFileLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ulogd.pid")
	cmd := helperCmd(t, "holdpid", "ULOGD_TEST_PIDFILE="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		cmd.Wait()
	}()
	if f, ok := stdout.(*os.File); ok {
		f.SetReadDeadline(time.Now().Add(10 * time.Second))
	}
	ready, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || ready != "ready\n" {
		t.Fatalf("helper said %q, %v", ready, err)
	}
	holder := cmd.Process.Pid

	l, stderr, _ := testLog(t)
	_, err = CreatePidFile(path, l.Logger())
	want := fmt.Sprintf("another ulogd already running with pid %d", holder)
	if err == nil || err.Error() != want {
		t.Fatalf("CreatePidFile error %v, want %q", err, want)
	}
	if got := readFile(t, path); got != fmt.Sprintf("%d\n", holder) {
		t.Errorf("refused create changed the file: %q", got)
	}
	if stderr.String() != "" {
		t.Errorf("unexpected log: %q", stderr.String())
	}

	// The holder exits without removing it: the file is stale now.
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	pf, err := CreatePidFile(path, l.Logger())
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Remove()
	if got := stderr.String(); !strings.HasPrefix(got, "Thu Nov  5 08:01:02 2026 <5> pidfile.go:") ||
		!strings.HasSuffix(got, fmt.Sprintf(" removing stale pidfile for pid %d\n", holder)) {
		t.Errorf("log %q", got)
	}
	if got := readFile(t, path); got != fmt.Sprintf("%d\n", os.Getpid()) {
		t.Errorf("content %q", got)
	}
}

func TestPidFileStale(t *testing.T) {
	pidMax, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		t.Fatal(err)
	}
	gone, err := strconv.Atoi(strings.TrimSpace(string(pidMax))) // pids are < pid_max
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, content string
		pid           int
	}{
		{"dead process", fmt.Sprintf("%d\n", gone), gone},
		{"garbage", "not a pid\n", 0},
		{"empty", "", 0},
		{"our own pid", fmt.Sprintf("%d\n", os.Getpid()), os.Getpid()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ulogd.pid")
			if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			l, stderr, _ := testLog(t)
			pf, err := CreatePidFile(path, l.Logger())
			if err != nil {
				t.Fatal(err)
			}
			defer pf.Remove()
			want := fmt.Sprintf(" removing stale pidfile for pid %d\n", tc.pid)
			if got := stderr.String(); !strings.HasPrefix(got, "Thu Nov  5 08:01:02 2026 <5> pidfile.go:") ||
				!strings.HasSuffix(got, want) || strings.Count(got, "\n") != 1 {
				t.Errorf("log %q, want the notice %q", got, want)
			}
			if got := readFile(t, path); got != fmt.Sprintf("%d\n", os.Getpid()) {
				t.Errorf("content %q", got)
			}
		})
	}
}

func TestPidFileErrors(t *testing.T) {
	_, err := CreatePidFile(filepath.Join(t.TempDir(), "nodir", "ulogd.pid"), nil)
	if err == nil || !strings.Contains(err.Error(), "no such file or directory") {
		t.Errorf("got %v", err)
	}
	pf, err := CreatePidFile(filepath.Join(t.TempDir(), "ulogd.pid"), nil)
	if err != nil {
		t.Fatal(err)
	}
	pf.Remove()
	if err := pf.Rewrite(); err == nil {
		t.Error("Rewrite after Remove succeeded")
	}
}
