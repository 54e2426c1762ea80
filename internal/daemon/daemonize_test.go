package daemon

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestDaemonize runs ulogd's -p/-d start-up in a helper process (H): H
// creates the pid file and calls Daemonize; the re-executed daemon (D)
// adopts the pid file, rewrites it and reports its pid through a FIFO, then
// waits for the test's go-ahead on a second FIFO and removes the pid file.
func TestDaemonize(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"report", "release"} {
		if err := unix.Mkfifo(filepath.Join(dir, name), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Opened read-write: never blocks, and there is always a writer (for
	// release) or a reader (for report), so D never blocks opening them.
	// FIFOs are pollable, so reads take deadlines.
	report, err := os.OpenFile(filepath.Join(dir, "report"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer report.Close()
	release, err := os.OpenFile(filepath.Join(dir, "release"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer release.Close() // if the test fails early, D reads EOF and exits
	report.SetReadDeadline(time.Now().Add(20 * time.Second))
	rd := bufio.NewReader(report)

	h := helperCmd(t, "daemonize", "ULOGD_TEST_DIR="+dir)
	out, err := h.Output()
	if err != nil || len(out) != 0 {
		t.Fatalf("parent: %v, output %q", err, out)
	}
	hpid := h.Process.Pid

	first, err := rd.ReadString('\n')
	if err != nil {
		t.Fatalf("reading the daemon's report: %v", err)
	}
	dpid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		t.Fatalf("daemon reported %q", first)
	}
	if dpid == hpid || dpid == os.Getpid() {
		t.Fatalf("daemon pid %d is not a new process", dpid)
	}

	// Session leader of a new session, cwd "/", stdio on /dev/null.
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", dpid))
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	// fields: state ppid pgrp session tty_nr ...
	if fields[3] != strconv.Itoa(dpid) || fields[2] != strconv.Itoa(dpid) {
		t.Errorf("pgrp %s session %s, want both %d", fields[2], fields[3], dpid)
	}
	if fields[4] != "0" {
		t.Errorf("controlling tty %s, want none", fields[4])
	}
	if cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", dpid)); err != nil || cwd != "/" {
		t.Errorf("cwd %q, %v", cwd, err)
	}
	for fd := range 3 {
		if target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", dpid, fd)); err != nil || target != os.DevNull {
			t.Errorf("fd %d → %q, %v", fd, target, err)
		}
	}
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", dpid))
	if err != nil || !strings.Contains(string(env), "\x00"+DaemonizedEnv+"=1\x00") {
		t.Errorf("%s not in the daemon's environment (%v)", DaemonizedEnv, err)
	}

	// The pid file survived the parent, holds the daemon's pid and is locked.
	pidPath := filepath.Join(dir, "ulogd.pid")
	if got := readFile(t, pidPath); got != fmt.Sprintf("%d\n", dpid) {
		t.Errorf("pid file %q, want %d", got, dpid)
	}
	if flags, err := pidFileFlags(dpid, pidPath); err != nil || flags&unix.O_CLOEXEC == 0 {
		t.Errorf("daemon's pid file descriptor flags %#o, %v: want close-on-exec", flags, err)
	}
	_, err = CreatePidFile(pidPath, nil)
	if want := fmt.Sprintf("another ulogd already running with pid %d", dpid); err == nil || err.Error() != want {
		t.Errorf("CreatePidFile while the daemon runs: %v, want %q", err, want)
	}

	if _, err := release.WriteString("go\n"); err != nil {
		t.Fatal(err)
	}
	last, err := rd.ReadString('\n')
	if err != nil {
		t.Fatalf("reading the daemon's last report: %v", err)
	}
	if last != "removed \"go\" <nil>\n" {
		t.Errorf("daemon said %q", last)
	}
	if _, err := os.Stat(pidPath); !os.IsNotExist(err) {
		t.Errorf("pid file left behind: %v", err)
	}
}

func TestDaemonizeInChild(t *testing.T) {
	t.Setenv(DaemonizedEnv, "1")
	child, err := Daemonize(os.Args, os.Environ(), nil)
	if !child || err != nil {
		t.Errorf("Daemonize with %s set = %v, %v", DaemonizedEnv, child, err)
	}
}

// pidFileFlags finds the descriptor of process pid open on path and returns
// its open flags from /proc/PID/fdinfo.
func pidFileFlags(pid int, path string) (int64, error) {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0, err
	}
	for _, e := range fds {
		target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		if err != nil || target != path {
			continue
		}
		info, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, e.Name()))
		if err != nil {
			return 0, err
		}
		for _, ln := range strings.Split(string(info), "\n") {
			if v, ok := strings.CutPrefix(ln, "flags:"); ok {
				return strconv.ParseInt(strings.TrimSpace(v), 8, 64)
			}
		}
	}
	return 0, fmt.Errorf("no descriptor on %s", path)
}
