package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ulogd-go/ulogd/internal/logging"
	"github.com/ulogd-go/ulogd/internal/testutil"
)

var fixedTime = time.Date(2026, time.November, 5, 8, 1, 2, 0, time.Local)

// testLog returns a Log with a fixed clock and captured stderr and stdout.
func testLog(t *testing.T) (l *Log, stderr, stdout *testutil.Buffer) {
	t.Helper()
	l = NewLog()
	stderr, stdout = &testutil.Buffer{}, &testutil.Buffer{}
	l.stderr, l.stdout = stderr, stdout
	l.now = func() time.Time { return fixedTime }
	t.Cleanup(func() { l.Close() })
	return l, stderr, stdout
}

// line returns the caller's line number.
func line() int {
	_, _, n, _ := runtime.Caller(1)
	return n
}

func TestLogFormat(t *testing.T) {
	l, stderr, _ := testLog(t)
	l.SetLevel(1)
	lg := l.Logger()
	ctx := context.Background()

	n := line() + 1
	lg.Log(ctx, logging.LevelNotice, "registering plugin `NFLOG'")
	lg.Debug("dbg")
	lg.Info("info with attrs", "a", 1, "b", "x y", "e", "", "q", `say "hi"`, "d", 1500*time.Millisecond)
	lg.Warn("warn")
	lg.Error("err", "err", errors.New("boom"))
	lg.Log(ctx, logging.LevelFatal, "fatal\n") // a ported message with its own newline
	lg.With("inst", "log1").WithGroup("g").With("k", "v").Info("grouped", slog.Group("sub", "x", 1), "y", 2)
	lg.WithGroup("empty").Info("no attrs")

	where := func(i int) string { return fmt.Sprintf("log_test.go:%d", n+i) }
	want := strings.Join([]string{
		"Thu Nov  5 08:01:02 2026 <5> " + where(0) + " registering plugin `NFLOG'",
		"Thu Nov  5 08:01:02 2026 <1> " + where(1) + " dbg",
		"Thu Nov  5 08:01:02 2026 <3> " + where(2) + ` info with attrs a=1 b="x y" e="" q="say \"hi\"" d=1.5s`,
		"Thu Nov  5 08:01:02 2026 <5> " + where(3) + " warn",
		"Thu Nov  5 08:01:02 2026 <7> " + where(4) + " err err=boom",
		"Thu Nov  5 08:01:02 2026 <8> " + where(5) + " fatal",
		"Thu Nov  5 08:01:02 2026 <3> " + where(6) + " grouped inst=log1 g.k=v g.sub.x=1 g.y=2",
		"Thu Nov  5 08:01:02 2026 <3> " + where(7) + " no attrs",
	}, "\n") + "\n"
	if diff := cmp.Diff(want, stderr.String()); diff != "" {
		t.Errorf("log output (-want +got):\n%s", diff)
	}
}

func TestLogCtimeTwoDigitDay(t *testing.T) {
	l, stderr, _ := testLog(t)
	l.now = func() time.Time { return time.Date(2026, time.November, 25, 18, 11, 46, 0, time.Local) }
	l.Logger().Log(context.Background(), logging.LevelNotice, "x")
	if got := stderr.String(); !strings.HasPrefix(got, "Wed Nov 25 18:11:46 2026 <5> log_test.go:") {
		t.Errorf("got %q", got)
	}
}

func TestLogRecordTimeWithoutClock(t *testing.T) {
	l, stderr, _ := testLog(t)
	l.now = nil
	before := time.Now().Truncate(time.Second)
	l.Logger().Log(context.Background(), logging.LevelNotice, "x")
	got, err := time.ParseInLocation(ctimeLayout, stderr.String()[:len(ctimeLayout)], time.Local)
	if err != nil {
		t.Fatal(err)
	}
	if got.Before(before) || got.After(time.Now()) {
		t.Errorf("time %v not in [%v, now]", got, before)
	}
}

func TestLogLevelFiltering(t *testing.T) {
	levels := []slog.Level{slog.LevelDebug, slog.LevelInfo, logging.LevelNotice, slog.LevelWarn, slog.LevelError, logging.LevelFatal}
	for _, tc := range []struct {
		u    int
		want string // ulogd numbers of the lines emitted
	}{
		{0, "1 3 5 5 7 8"},
		{1, "1 3 5 5 7 8"},
		{3, "3 5 5 7 8"},
		{4, "5 5 7 8"},
		{5, "5 5 7 8"},
		{7, "7 8"},
		{8, "8"},
		{9, ""},
	} {
		t.Run(fmt.Sprint(tc.u), func(t *testing.T) {
			l, stderr, _ := testLog(t)
			lg := l.Logger() // handed out before SetLevel
			l.SetLevel(tc.u)
			for _, lv := range levels {
				lg.Log(context.Background(), lv, "m")
			}
			var got []string
			for _, ln := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
				if i := strings.Index(ln, "<"); i >= 0 {
					got = append(got, ln[i+1:strings.Index(ln, ">")])
				}
			}
			if s := strings.Join(got, " "); s != tc.want {
				t.Errorf("loglevel %d emitted %q, want %q", tc.u, s, tc.want)
			}
		})
	}
}

func TestLogDefaultLevelNotice(t *testing.T) {
	l, stderr, _ := testLog(t)
	l.Logger().Info("hidden")
	l.Logger().Log(context.Background(), logging.LevelNotice, "shown")
	if got := stderr.String(); strings.Contains(got, "hidden") || !strings.Contains(got, "shown") {
		t.Errorf("got %q", got)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestLogFileAndVerbose(t *testing.T) {
	l, stderr, stdout := testLog(t)
	lg := l.Logger()
	path := filepath.Join(t.TempDir(), "ulogd.log")
	if err := os.WriteFile(path, []byte("old line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := l.Open(path); err != nil {
		t.Fatal(err)
	}
	if got := l.Dest(); got != path {
		t.Errorf("Dest() = %q", got)
	}
	lg.Error("quiet")
	l.SetVerbose(true)
	lg.Error("loud")
	if got := readFile(t, path); !strings.HasPrefix(got, "old line\n") ||
		!strings.Contains(got, " quiet\n") || !strings.Contains(got, " loud\n") {
		t.Errorf("file (appended) = %q", got)
	}
	if got := stderr.String(); strings.Contains(got, "quiet") || strings.Count(got, "\n") != 1 ||
		!strings.HasSuffix(got, " loud\n") {
		t.Errorf("stderr copy = %q", got)
	}

	// stdout destination, verbose: both.
	*stderr = testutil.Buffer{}
	if err := l.Open("stdout"); err != nil {
		t.Fatal(err)
	}
	lg.Error("to stdout")
	if stdout.String() == "" || stdout.String() != stderr.String() {
		t.Errorf("stdout %q, stderr %q", stdout.String(), stderr.String())
	}

	// stderr destination (Close), verbose: one copy only.
	l.Close()
	*stderr = testutil.Buffer{}
	lg.Error("once")
	if got := stderr.String(); strings.Count(got, "once") != 1 {
		t.Errorf("stderr = %q", got)
	}
}

func TestLogFileMode(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	l, _, _ := testLog(t)
	path := filepath.Join(t.TempDir(), "ulogd.log")
	if err := l.Open(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
}

func TestLogOpenError(t *testing.T) {
	l, stderr, _ := testLog(t)
	path := filepath.Join(t.TempDir(), "nodir", "ulogd.log")
	err := l.Open(path)
	want := "can't open logfile '" + path + "': no such file or directory"
	if err == nil || err.Error() != want {
		t.Fatalf("Open error %v, want %q", err, want)
	}
	if !errors.Is(err, syscall.ENOENT) {
		t.Errorf("error does not wrap ENOENT")
	}
	l.Logger().Error("still stderr")
	if !strings.Contains(stderr.String(), "still stderr") {
		t.Errorf("destination changed after a failed Open")
	}
}

// TestLogReopen plays logrotate: rename, then SIGHUP → Reopen.
func TestLogReopen(t *testing.T) {
	l, _, _ := testLog(t)
	lg := l.Logger()
	dir := t.TempDir()
	path := filepath.Join(dir, "ulogd.log")
	rotated := path + ".1"
	if err := l.Open(path); err != nil {
		t.Fatal(err)
	}
	lg.Error("before")
	if err := os.Rename(path, rotated); err != nil {
		t.Fatal(err)
	}
	lg.Error("renamed, not yet reopened")
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	lg.Error("after")

	old, cur := readFile(t, rotated), readFile(t, path)
	if !strings.Contains(old, " before\n") || !strings.Contains(old, " renamed, not yet reopened\n") ||
		strings.Contains(old, "after") {
		t.Errorf("rotated file = %q", old)
	}
	if strings.Count(cur, "\n") != 1 || !strings.HasSuffix(cur, " after\n") {
		t.Errorf("new file = %q", cur)
	}

	// A failed reopen keeps the current file.
	if err := os.Rename(path, rotated); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	err := l.Reopen()
	if want := "can't open logfile '" + path + "': is a directory"; err == nil || err.Error() != want {
		t.Fatalf("Reopen error %v, want %q", err, want)
	}
	lg.Error("kept")
	if got := readFile(t, rotated); !strings.HasSuffix(got, " kept\n") {
		t.Errorf("after failed reopen, file = %q", got)
	}
}

// TestLogReopenUnderLoad checks that no line is lost or split when the file
// is rotated while several goroutines log.
func TestLogReopenUnderLoad(t *testing.T) {
	l, _, _ := testLog(t)
	lg := l.Logger()
	path := filepath.Join(t.TempDir(), "ulogd.log")
	if err := l.Open(path); err != nil {
		t.Fatal(err)
	}
	const writers, lines = 4, 500
	// Writers signal at half way, keep logging while the file is rotated,
	// and wait at three quarters until the rotation is done, so that both
	// files get lines and the rotation races with live writers.
	half := make(chan struct{}, writers)
	rotated := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range lines {
				switch i {
				case lines / 2:
					half <- struct{}{}
				case lines * 3 / 4:
					<-rotated
				}
				lg.Error("line", "w", w, "i", i)
			}
		}()
	}
	for range writers {
		<-half
	}
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	err := l.Reopen()
	close(rotated)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}

	seen := map[string]bool{}
	for _, p := range []string{path + ".1", path} {
		for _, ln := range strings.Split(strings.TrimSuffix(readFile(t, p), "\n"), "\n") {
			i := strings.Index(ln, " line w=")
			if i < 0 {
				t.Fatalf("malformed line %q in %s", ln, p)
			}
			key := ln[i:]
			if seen[key] {
				t.Fatalf("duplicate line %q", ln)
			}
			seen[key] = true
		}
	}
	if len(seen) != writers*lines {
		t.Errorf("%d lines in both files, want %d", len(seen), writers*lines)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		t.Errorf("new file empty after reopen: %v", err)
	}
}

func recvDatagram(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, _, err := c.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func TestLogSyslog(t *testing.T) {
	l, stderr, _ := testLog(t)
	l.SetLevel(1)
	l.SetVerbose(true) // ignored for syslog
	sock := filepath.Join(t.TempDir(), "log")
	l.syslogPath = sock
	srv, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Open("syslog"); err != nil {
		t.Fatal(err)
	}
	if l.Dest() != "syslog" {
		t.Errorf("Dest() = %q", l.Dest())
	}
	lg := l.Logger()
	prefix := fmt.Sprintf("Nov  5 08:01:02 ulogd[%d]: ", os.Getpid())
	for _, tc := range []struct {
		lv  slog.Level
		pri int
	}{
		{slog.LevelDebug, 31}, {slog.LevelInfo, 30}, {logging.LevelNotice, 29}, {slog.LevelWarn, 29},
		{slog.LevelError, 27}, {logging.LevelFatal, 26},
	} {
		lg.Log(context.Background(), tc.lv, "loading all plugins", "k", "v w")
		want := fmt.Sprintf("<%d>%sloading all plugins k=\"v w\"", tc.pri, prefix)
		if got := recvDatagram(t, srv); got != want {
			t.Errorf("level %v: got %q, want %q", tc.lv, got, want)
		}
	}

	// syslogd goes away: stderr, announced once.
	srv.Close()
	os.Remove(sock)
	lg.Error("lost 1")
	lg.Error("lost 2")
	got := stderr.String()
	if strings.Count(got, "can't send to syslog at "+sock) != 1 ||
		!strings.Contains(got, "> log_test.go:") || !strings.Contains(got, " lost 1\n") ||
		!strings.Contains(got, " lost 2\n") {
		t.Errorf("fallback stderr = %q", got)
	}

	// syslogd is back: reconnect.
	srv, err = net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	lg.Error("back")
	if got := recvDatagram(t, srv); got != "<27>"+prefix+"back" {
		t.Errorf("after reconnect got %q", got)
	}
}

func TestLogSyslogStream(t *testing.T) {
	l, _, _ := testLog(t)
	sock := filepath.Join(t.TempDir(), "log")
	l.syslogPath = sock
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		var b []byte
		buf := make([]byte, 256)
		for !bytes.Contains(b, []byte{0}) {
			n, err := c.Read(buf)
			b = append(b, buf[:n]...)
			if err != nil {
				break
			}
		}
		got <- string(b)
	}()
	l.Open("syslog")
	l.Logger().Log(context.Background(), logging.LevelNotice, "hello")
	want := fmt.Sprintf("<29>Nov  5 08:01:02 ulogd[%d]: hello\x00", os.Getpid())
	select {
	case g := <-got:
		if g != want {
			t.Errorf("got %q, want %q", g, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no message on the stream socket")
	}
}
