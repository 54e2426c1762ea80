package syslog

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ulogd-go/ulogd/internal/config"
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/plugintest"
	"github.com/ulogd-go/ulogd/internal/stack"
)

const line = "OUT-LOG IN= OUT=spec-va MAC= SRC=10.99.0.1 DST=10.99.0.2 LEN=84 PROTO=ICMP TYPE=8 CODE=0 \n"

// listen makes a syslog daemon stand-in: a unixgram socket in a temp dir.
func listen(t *testing.T, path string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// recv reads one datagram, or fails after a bounded wait.
func recv(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 65536)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no datagram: %v", err)
	}
	return string(buf[:n])
}

// none checks that nothing more was sent.
func none(t *testing.T, c *net.UnixConn) {
	t.Helper()
	buf := make([]byte, 65536)
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, err := c.Read(buf); err == nil {
		t.Fatalf("unexpected datagram %q", buf[:n])
	}
}

// direct builds a started sink sending to path, with a fixed clock.
func direct(t testing.TB, cfg *Config, path string) (*sink, *keys.Record) {
	t.Helper()
	d, _ := plugin.Default.Lookup("SYSLOG")
	inst, err := d.New(&plugin.Env{ID: "sys1", Plugin: "SYSLOG", Config: cfg, In: []keys.Slot{0}})
	if err != nil {
		t.Fatal(err)
	}
	s := inst.(*sink)
	s.path = path
	s.now = func() time.Time { return time.Date(2026, 11, 5, 18, 18, 0, 0, time.Local) }
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(t.Context()) })
	r := keys.NewRecord([]keys.Type{keys.String})
	r.SetString(0, line)
	return s, r
}

func TestDatagram(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		facility, level string
		pri             int
	}{
		// LOG_KERN is 0, which syslog(3) replaces by the openlog facility
		// LOG_DAEMON: the default logs as daemon.notice (docs/compat.md T5).
		{"LOG_KERN", "LOG_NOTICE", 29},
		{"LOG_LOCAL2", "LOG_INFO", 150},
		{"LOG_USER", "LOG_ERR", 11},
		{"LOG_DAEMON", "LOG_DEBUG", 31},
		{"LOG_LOCAL7", "LOG_EMERG", 184},
		{"LOG_KERN", "LOG_WARNING", 28},
	} {
		t.Run(tc.facility+"/"+tc.level, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "log")
			srv := listen(t, path)
			s, r := direct(t, &Config{Facility: tc.facility, Level: tc.level}, path)
			if v := s.Interp(r); v != plugin.Continue {
				t.Fatalf("Interp = %v", v)
			}
			// The day of month is space-padded, the message verbatim.
			want := fmt.Sprintf("<%d>Nov  5 18:18:00 ulogd[%d]: %s", tc.pri, os.Getpid(), line)
			if got := recv(t, srv); got != want {
				t.Errorf("datagram\n got %q\nwant %q", got, want)
			}
			r.Reset()
			s.Interp(r) // print invalid: nothing sent
			none(t, srv)
		})
	}
}

// TestDefaults builds the sink from the descriptor with the default
// configuration: it sends to /dev/log (here redirected to a test socket)
// with the priority LOG_KERN|LOG_NOTICE and the real clock.
func TestDefaults(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "log")
	srv := listen(t, path)
	d, _ := plugin.Default.Lookup("SYSLOG")
	inst, err := d.New(&plugin.Env{ID: "sys1", Plugin: "SYSLOG", Config: d.NewConfig(), In: []keys.Slot{0}})
	if err != nil {
		t.Fatal(err)
	}
	s := inst.(*sink)
	if s.path != "/dev/log" {
		t.Errorf("socket path %q, want /dev/log", s.path)
	}
	s.path = path
	s = plugintest.Started(t, s).(*sink)
	r := keys.NewRecord([]keys.Type{keys.String})
	for i := range 3 {
		r.SetString(0, fmt.Sprintf("line %d\n", i))
		s.Interp(r)
		r.Reset()
	}
	re := regexp.MustCompile(fmt.Sprintf(`^<29>[A-Z][a-z]{2} [ 1-3]\d \d\d:\d\d:\d\d ulogd\[%d\]: line (\d)\n$`, os.Getpid()))
	for i := range 3 {
		got := recv(t, srv)
		m := re.FindStringSubmatch(got)
		if m == nil || m[1] != fmt.Sprint(i) {
			t.Errorf("datagram %d = %q", i, got)
		}
	}
}

func TestBadOptions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ section, want string }{
		{"facility=LOG_FOO\n", "unknown facility 'LOG_FOO'"},
		{"level=LOG_LOUD\n", "unknown level 'LOG_LOUD'"},
		{"facility=log_kern\n", "unknown facility 'log_kern'"},
	} {
		text := "[global]\nstack=log1:NFLOG,sys1:SYSLOG\n[log1]\ngroup=1\n[sys1]\n" + tc.section
		f, err := config.Parse("t.conf", []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		_, err = stack.Build(f, plugin.Default, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: build error %v, want %q", tc.section, err, tc.want)
		}
	}
}

func TestMissingSocketFailsStart(t *testing.T) {
	t.Parallel()
	d, _ := plugin.Default.Lookup("SYSLOG")
	inst, err := d.New(&plugin.Env{Config: &Config{Facility: "LOG_KERN", Level: "LOG_NOTICE"}, In: []keys.Slot{0}})
	if err != nil {
		t.Fatal(err)
	}
	inst.(*sink).path = filepath.Join(t.TempDir(), "missing")
	if err := inst.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "can't connect to syslog") {
		t.Fatalf("Start = %v", err)
	}
}

// TestReconnect: the syslog daemon restarts (a new socket at the same
// path); the next message reaches the new one.
func TestReconnect(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "log")
	srv := listen(t, path)
	s, r := direct(t, &Config{Facility: "LOG_LOCAL2", Level: "LOG_INFO"}, path)
	s.Interp(r)
	recv(t, srv)
	srv.Close()
	os.Remove(path)
	srv2 := listen(t, path)
	if v := s.Interp(r); v != plugin.Continue {
		t.Fatalf("Interp after restart = %v", v)
	}
	if got := recv(t, srv2); !strings.HasPrefix(got, "<150>") || !strings.HasSuffix(got, line) {
		t.Errorf("after restart %q", got)
	}
	// While nobody listens the event fails, and the next one gets through
	// once the daemon is back.
	srv2.Close()
	os.Remove(path)
	if v := s.Interp(r); v != plugin.Fail {
		t.Errorf("Interp with no syslog daemon = %v, want Fail", v)
	}
	srv3 := listen(t, path)
	s.Interp(r)
	recv(t, srv3)
}

func TestStreamSocket(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "log")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s, r := direct(t, &Config{Facility: "LOG_KERN", Level: "LOG_NOTICE"}, path)
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s.Interp(r)
	want := fmt.Sprintf("<29>Nov  5 18:18:00 ulogd[%d]: %s\x00", os.Getpid(), line)
	buf := make([]byte, len(want))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != want {
		t.Errorf("stream message %q (%v), want %q", buf, err, want)
	}
}

func TestReopenReconnects(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "log")
	srv := listen(t, path)
	s, r := direct(t, &Config{Facility: "LOG_KERN", Level: "LOG_NOTICE"}, path)
	srv.Close()
	os.Remove(path)
	if err := s.Reopen(); err == nil {
		t.Error("Reopen with no socket succeeded")
	}
	srv2 := listen(t, path)
	if err := s.Reopen(); err != nil {
		t.Fatal(err)
	}
	s.Interp(r)
	recv(t, srv2)
}

func TestZeroAllocsPerEvent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	srv := listen(t, path)
	srv.SetReadBuffer(8 << 20)
	s, r := direct(t, &Config{Facility: "LOG_KERN", Level: "LOG_NOTICE"}, path)
	s.now = time.Now
	buf := make([]byte, 4096)
	n := testing.AllocsPerRun(1000, func() {
		s.Interp(r)
		srv.Read(buf) // keep the receive queue from filling
	})
	if n != 0 {
		t.Errorf("%v allocations per event, want 0", n)
	}
}

func BenchmarkInterp(b *testing.B) {
	path := filepath.Join(b.TempDir(), "log")
	srv, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			if _, err := srv.Read(buf); err != nil {
				return
			}
		}
	}()
	s, r := direct(b, &Config{Facility: "LOG_KERN", Level: "LOG_NOTICE"}, path)
	s.now = time.Now
	b.ReportAllocs()
	for b.Loop() {
		s.Interp(r)
	}
	srv.Close()
	<-done
}
