package unixsock

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/plugintest"
	"github.com/ulogd-go/ulogd/internal/testutil"
)

// socketDir returns a short temporary directory: unix socket paths are
// limited to 107 bytes, which t.TempDir's long names can exceed.
func socketDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "usock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

type fixture struct {
	in   *instance
	em   *plugintest.Recorder
	log  *testutil.Buffer
	path string
	src  *plugintest.Source // stopped when the test ends
}

// newFixture builds an instance whose socket lives in a fresh directory;
// mod may change the config.
func newFixture(t *testing.T, mod func(*Config)) (*fixture, error) {
	t.Helper()
	cfg := defaultConfig()
	cfg.SocketPath = filepath.Join(socketDir(t), "ulogd2.sock")
	if mod != nil {
		mod(cfg)
	}
	lb := &testutil.Buffer{}
	env := &plugin.Env{
		ID: "nuauth1", Plugin: "UNIXSOCK", Config: cfg,
		Out: identitySlots()[:],
		Log: slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	inst, err := newInstance(env, cfg)
	if err != nil {
		t.Fatalf("newInstance: %v", err)
	}
	f := &fixture{in: inst.(*instance), em: newTestEmitter(), log: lb, path: cfg.SocketPath}
	f.src = plugintest.NewSource(t, f.in)
	return f, f.in.Start(context.Background())
}

// start starts an instance and runs it until the test ends.
func start(t *testing.T, mod func(*Config)) *fixture {
	t.Helper()
	f, err := newFixture(t, mod)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	f.src.Run(context.Background(), f.em)
	return f
}

func (f *fixture) dial(t *testing.T) *net.UnixConn {
	t.Helper()
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: f.path, Net: "unix"})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func send(t *testing.T, c net.Conn, b []byte) {
	t.Helper()
	if _, err := c.Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// expectClosed waits until the server closes c.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := c.Read(make([]byte, 16))
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the server did not close the connection: %v", err)
	}
}

func (f *fixture) prefixes() []string {
	var out []string
	for _, r := range f.em.Records() {
		p, _ := r["oob.prefix"].(string)
		out = append(out, p)
	}
	return out
}

// ---------------------------------------------------------------------------

func TestClientFrames(t *testing.T) {
	t.Parallel()
	f := start(t, nil)
	c := f.dial(t)

	full := buildFrame(icmpEcho, allOpts()...)
	send(t, c, full)
	f.em.Next(t, 1)

	send(t, c, buildFrame(icmpEcho)) // no options
	f.em.Next(t, 1)

	// Several frames in one write.
	send(t, c, cat(buildFrame(icmpEcho, strOpt(optPrefix, "A")), buildFrame(ipv6Hdr, strOpt(optPrefix, "B")),
		buildFrame(icmpEcho, strOpt(optPrefix, "C"))))
	f.em.Next(t, 3)

	// One frame split across writes, byte by byte.
	for _, b := range buildFrame(icmpEcho, strOpt(optPrefix, "D"), opt{optState, []byte{3}}) {
		send(t, c, []byte{b})
	}
	f.em.Next(t, 1)

	recs := f.em.Records()
	want0 := rec{
		"raw.pkt": string(icmpEcho), "raw.pktlen": uint64(28), "raw.pktcount": uint64(1), "oob.family": uint64(2),
		"oob.prefix": "MYPREFIX", "oob.in": "eth0", "oob.out": "eth1",
		"oob.time.sec": uint64(1700000000), "oob.time.usec": uint64(0),
		"nufw.user.name": "alice", "nufw.user.id": uint64(1000),
		"nufw.os.name": "Linux", "nufw.os.rel": "6.1.0", "nufw.os.vers": "#1 SMP",
		"nufw.app.name": "/usr/bin/ping", "raw.label": uint64(2),
	}
	if diff := cmp.Diff(want0, recs[0]); diff != "" {
		t.Errorf("frame with every option (-want +got):\n%s", diff)
	}
	// Without the time option, oob.time is the time of reception.
	r1 := recs[1]
	if sec, _ := r1["oob.time.sec"].(uint64); time.Since(time.Unix(int64(sec), 0)).Abs() > time.Minute {
		t.Errorf("oob.time.sec = %v, want about now", r1["oob.time.sec"])
	}
	if _, ok := r1["oob.time.usec"]; !ok {
		t.Error("oob.time.usec not set for a frame without time")
	}
	for _, k := range []string{"oob.prefix", "oob.in", "raw.label", "nufw.user.id"} {
		if _, ok := r1[k]; ok {
			t.Errorf("frame without options: %s is set", k)
		}
	}
	if diff := cmp.Diff([]string{"MYPREFIX", "", "A", "B", "C", "D"}, f.prefixes()); diff != "" {
		t.Errorf("prefixes (-want +got):\n%s", diff)
	}
	if fam := recs[3]["oob.family"]; fam != uint64(10) {
		t.Errorf("IPv6 frame: oob.family = %v", fam)
	}
	if lbl := recs[5]["raw.label"]; lbl != uint64(3) {
		t.Errorf("split frame: raw.label = %v", lbl)
	}
	if n := f.in.stats.frames.Load(); n != 6 {
		t.Errorf("frames counter = %d", n)
	}
}

func TestBadMarkerClosesOnlyThatClient(t *testing.T) {
	t.Parallel()
	f := start(t, nil)
	c1 := f.dial(t)
	other := f.dial(t)
	send(t, c1, buildFrame(icmpEcho, strOpt(optPrefix, "first")))
	f.em.Next(t, 1)
	bad := buildFrame(icmpEcho, strOpt(optPrefix, "lost"))
	binary.BigEndian.PutUint32(bad, 0x12345678)
	send(t, c1, cat(bad, buildFrame(icmpEcho, strOpt(optPrefix, "after"))))
	expectClosed(t, c1)

	// The server keeps running: a connected client and a new one work.
	send(t, other, buildFrame(icmpEcho, strOpt(optPrefix, "other")))
	f.em.Next(t, 1)
	c2 := f.dial(t)
	send(t, c2, buildFrame(icmpEcho, strOpt(optPrefix, "second")))
	f.em.Next(t, 1)
	if diff := cmp.Diff([]string{"first", "other", "second"}, f.prefixes()); diff != "" {
		t.Errorf("prefixes (-want +got):\n%s", diff)
	}
	if n := f.in.stats.outOfSync.Load(); n != 1 {
		t.Errorf("outOfSync = %d, want 1", n)
	}
	if !strings.Contains(f.log.String(), "invalid packet marker received (read 12345678, expected 41c90fd4)") {
		t.Errorf("log lacks the marker error:\n%s", f.log)
	}
}

func TestBadFramesSkipped(t *testing.T) {
	t.Parallel()
	f := start(t, func(c *Config) { c.BufSize = 128 })
	c := f.dial(t)

	oversized := buildFrame(make([]byte, 300), strOpt(optPrefix, "big"))
	badPLen := buildFrame(icmpEcho, strOpt(optPrefix, "badplen"))
	binary.BigEndian.PutUint16(badPLen[offPLen:], 200)
	overrun := buildFrame(icmpEcho, strOpt(optPrefix, "overrun"))
	binary.BigEndian.PutUint32(overrun[offPayload+32+4:], 1000)

	send(t, c, cat(oversized, buildFrame(icmpEcho, strOpt(optPrefix, "1")), badPLen, overrun,
		buildFrame(icmpEcho, strOpt(optPrefix, "2"))))
	f.em.Next(t, 2)
	if diff := cmp.Diff([]string{"1", "2"}, f.prefixes()); diff != "" {
		t.Errorf("prefixes (-want +got):\n%s", diff)
	}
	if n := f.in.stats.rejected.Load(); n != 3 {
		t.Errorf("rejected = %d, want 3", n)
	}
	// Rate limited: one warning for the three rejections.
	if n := strings.Count(f.log.String(), "frame skipped"); n != 1 {
		t.Errorf("%d 'frame skipped' lines, want 1:\n%s", n, f.log)
	}

	// A truncated frame: the client goes away in the middle.
	c2 := f.dial(t)
	send(t, c2, buildFrame(icmpEcho)[:20])
	c2.Close()
	c3 := f.dial(t)
	send(t, c3, buildFrame(icmpEcho, strOpt(optPrefix, "3")))
	f.em.Next(t, 1)
	testutil.WaitFor(t, 10*time.Second, "4 rejected connections", func() bool { return f.in.stats.rejected.Load() == 4 })
	if n := f.in.stats.rejected.Load(); n != 4 {
		t.Errorf("rejected after a truncated frame = %d, want 4", n)
	}
}

func TestUnknownOptionRateLimited(t *testing.T) {
	t.Parallel()
	f := start(t, nil)
	c := f.dial(t)
	fr := buildFrame(icmpEcho, strOpt(optPrefix, "P"), opt{77, []byte("x")})
	var all []byte
	for range 100 {
		all = append(all, fr...)
	}
	send(t, c, all)
	f.em.Next(t, 100)
	if n := f.in.stats.unknown.Load(); n != 100 {
		t.Errorf("unknown options = %d, want 100", n)
	}
	if n := strings.Count(f.log.String(), "unknown option 77 ignored"); n != 1 {
		t.Errorf("%d notices, want 1:\n%s", n, f.log)
	}
	for _, r := range f.em.Records() {
		if r["oob.prefix"] != "P" {
			t.Fatalf("record %v", r)
		}
	}
}

func TestConcurrentClients(t *testing.T) {
	t.Parallel()
	f := start(t, nil)
	const perClient = 200
	var wg sync.WaitGroup
	for _, name := range []string{"one", "two"} {
		c := f.dial(t)
		wg.Go(func() {
			for i := range perClient {
				fr := buildFrame(icmpEcho, strOpt(optPrefix, name), opt{optUserID, hostU32(uint32(i))})
				// Cut frames in odd pieces to interleave the clients.
				for _, p := range split(fr, 13) {
					if _, err := c.Write(p); err != nil {
						t.Errorf("%s: write: %v", name, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	f.em.Next(t, 2*perClient)
	next := map[string]uint64{}
	for _, r := range f.em.Records() {
		p := r["oob.prefix"].(string)
		if id := r["nufw.user.id"].(uint64); id != next[p] {
			t.Fatalf("client %s: frame %d arrived when %d was expected", p, id, next[p])
		}
		next[p]++
	}
	if next["one"] != perClient || next["two"] != perClient {
		t.Errorf("frames per client: %v", next)
	}
}

// TestIdleClientEvicted: with maxClients connections open, a new client
// is served and the one idle the longest is closed (before, the new one
// was refused: idle connections locked the real client out).
func TestIdleClientEvicted(t *testing.T) {
	t.Parallel()
	f := start(t, nil)
	var conns []*net.UnixConn
	for i := range maxClients {
		c := f.dial(t)
		send(t, c, buildFrame(icmpEcho, strOpt(optPrefix, strconv.Itoa(i))))
		f.em.Next(t, 1) // served, one after the other: conns[0] is idle the longest
		conns = append(conns, c)
	}
	// conns[1] sends again: conns[0] stays the one idle the longest.
	send(t, conns[1], buildFrame(icmpEcho, strOpt(optPrefix, "again")))
	f.em.Next(t, 1)

	late := f.dial(t)
	send(t, late, buildFrame(icmpEcho, strOpt(optPrefix, "late")))
	f.em.Next(t, 1)
	expectClosed(t, conns[0])
	if n := f.in.stats.evicted.Load(); n != 1 {
		t.Errorf("evicted = %d, want 1", n)
	}
	for _, c := range []*net.UnixConn{conns[1], conns[2], late} {
		send(t, c, buildFrame(icmpEcho, strOpt(optPrefix, "still")))
	}
	f.em.Next(t, 3)
	if got := strings.Count(f.log.String(), "closing the one idle the longest"); got != 1 {
		t.Errorf("%d eviction notices, want 1:\n%s", got, f.log)
	}
	if strings.Contains(f.log.String(), "read error") {
		t.Errorf("the eviction was logged as a read error:\n%s", f.log)
	}
}

// TestTruncatedFramesRateLimited: clients that leave in the middle of a
// frame are each counted, and noticed once per rate-limit interval, not
// once per frame.
func TestTruncatedFramesRateLimited(t *testing.T) {
	t.Parallel()
	f := start(t, nil)
	const clients = 20
	fr := buildFrame(icmpEcho, strOpt(optPrefix, "cut"))
	for range clients {
		c := f.dial(t)
		send(t, c, fr[:len(fr)-3])
		c.Close()
	}
	testutil.WaitFor(t, 5*time.Second, "the rejected count", func() bool { return f.in.stats.rejected.Load() == clients })
	if n := strings.Count(f.log.String(), "client went away in the middle of a frame"); n != 1 {
		t.Errorf("%d notices for %d truncated frames, want 1:\n%s", n, clients, f.log)
	}
}

// TestCountersOnSIGUSR1: the counters are logged on SIGUSR1 too, not only
// at exit.
func TestCountersOnSIGUSR1(t *testing.T) {
	t.Parallel()
	f := start(t, nil)
	c := f.dial(t)
	bad := buildFrame(icmpEcho)
	binary.BigEndian.PutUint16(bad[offPLen:], 200) // runs past the frame
	send(t, c, cat(bad, buildFrame(icmpEcho)))
	f.em.Next(t, 1)
	sig, ok := plugin.Instance(f.in).(plugin.Signaler)
	if !ok {
		t.Fatal("UNIXSOCK does not take signals")
	}
	sig.Signal(syscall.SIGUSR2)
	if strings.Contains(f.log.String(), "UNIXSOCK counters") {
		t.Error("counters logged on SIGUSR2")
	}
	sig.Signal(syscall.SIGUSR1)
	if got := f.log.String(); !strings.Contains(got, `msg="UNIXSOCK counters" frames=1 rejected=1 out_of_sync=0`) {
		t.Errorf("no counters after SIGUSR1:\n%s", got)
	}
}

func TestStopUnlinksAndClosesClients(t *testing.T) {
	t.Parallel()
	f, err := newFixture(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.src.Run(context.Background(), f.em)
	c := f.dial(t)
	send(t, c, buildFrame(icmpEcho))
	f.em.Next(t, 1)
	f.src.Stop()
	if _, err := os.Lstat(f.path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket still there after Stop: %v", err)
	}
	expectClosed(t, c)
}

func TestRunReturnsOnCancel(t *testing.T) {
	t.Parallel()
	f, err := newFixture(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.src.Run(ctx, f.em)
	c := f.dial(t)
	send(t, c, buildFrame(icmpEcho))
	f.em.Next(t, 1)
	cancel()
	f.src.Wait()
	expectClosed(t, c)
	f.in.Stop(context.Background())
}

func TestStopLeavesAReplacedSocket(t *testing.T) {
	t.Parallel()
	f, err := newFixture(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(f.path)
	if err := os.WriteFile(f.path, []byte("someone else's"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.in.Stop(context.Background())
	if _, err := os.Lstat(f.path); err != nil {
		t.Errorf("Stop removed a file it did not create: %v", err)
	}
}

// ---------------------------------------------------------------------------
// Start-up

func TestStaleSocketRemoved(t *testing.T) {
	t.Parallel()
	path := filepath.Join(socketDir(t), "ulogd2.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close() // the file stays, nobody listens: what a crash leaves
	f := start(t, func(c *Config) { c.SocketPath = path })
	if !strings.Contains(f.log.String(), "removed stale socket") {
		t.Errorf("no notice about the stale socket:\n%s", f.log)
	}
	c := f.dial(t)
	send(t, c, buildFrame(icmpEcho))
	f.em.Next(t, 1)
}

func TestLiveSocketRefused(t *testing.T) {
	t.Parallel()
	path := filepath.Join(socketDir(t), "ulogd2.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	f, err := newFixture(t, func(c *Config) { c.SocketPath = path })
	if err == nil || !strings.Contains(err.Error(), "another process is listening") {
		t.Fatalf("Start = %v, want 'another process is listening'", err)
	}
	f.in.Stop(context.Background())
	// The other listener's socket is untouched.
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("the live socket was damaged: %v", err)
	}
	c.Close()
}

func TestStartErrors(t *testing.T) {
	t.Parallel()
	dir := socketDir(t)
	regular := filepath.Join(dir, "file")
	if err := os.WriteFile(regular, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"not a socket", func(c *Config) { c.SocketPath = regular }, "exists and is not a socket"},
		{"missing directory", func(c *Config) { c.SocketPath = filepath.Join(dir, "nodir", "s.sock") }, "create it before starting"},
		{"parent is a file", func(c *Config) { c.SocketPath = filepath.Join(regular, "s.sock") }, "is not a directory"},
		{"unknown owner", func(c *Config) { c.Owner = "no-such-user-ulogdtest" }, "invalid owner"},
		{"unknown group", func(c *Config) { c.Group = "no-such-group-ulogdtest" }, "invalid group"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := newFixture(t, tc.mod)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Start = %v, want %q", err, tc.want)
			}
			f.in.Stop(context.Background())
		})
	}
	if b, err := os.ReadFile(regular); err != nil || string(b) != "data" {
		t.Errorf("the regular file was touched: %q %v", b, err)
	}
}

func TestPermsAndOwner(t *testing.T) {
	t.Parallel()
	f, err := newFixture(t, func(c *Config) { c.Perms = 0o660 })
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(f.path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode = %v, want socket 0660", fi.Mode())
	}
	f.in.Stop(context.Background())

	if os.Geteuid() != 0 {
		t.Skip("chown needs root")
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody: %v", err)
	}
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		t.Skipf("no group for nobody: %v", err)
	}
	f, err = newFixture(t, func(c *Config) { c.Owner = "nobody"; c.Group = g.Name })
	if err != nil {
		t.Fatal(err)
	}
	defer f.in.Stop(context.Background())
	fi, err = os.Lstat(f.path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fmt.Sprint(st.Uid) != u.Uid || fmt.Sprint(st.Gid) != u.Gid {
		t.Errorf("owner %d:%d, want %s:%s", st.Uid, st.Gid, u.Uid, u.Gid)
	}
}

func TestDescriptor(t *testing.T) {
	t.Parallel()
	d := Descriptor()
	if d.Name != "UNIXSOCK" || d.Kind != plugin.Source {
		t.Errorf("descriptor %s %v", d.Name, d.Kind)
	}
	if got := d.Resources(defaultConfig()); !cmp.Equal(got, []string{"unix:" + DefaultSocketPath}) {
		t.Errorf("resources = %v", got)
	}
	if _, _, err := d.Keys(&Config{SocketPath: "", Perms: 0o600}); err == nil {
		t.Error("empty socket_path accepted")
	}
	// A config decoded with octal perms keeps its meaning.
	if c := defaultConfig(); c.Perms != 384 {
		t.Errorf("default perms %d, want 384 (0600)", c.Perms)
	}
}

// watchDir reports the inotify events for names created in, moved into or
// changed in dir, as name → masks in order, from the call to the call of
// the returned function.
func watchDir(t *testing.T, dir string) func() map[string][]uint32 {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_ATTRIB); err != nil {
		t.Fatal(err)
	}
	return func() map[string][]uint32 {
		got := map[string][]uint32{}
		buf := make([]byte, 64<<10)
		n, err := unix.Read(fd, buf)
		if err != nil {
			t.Fatalf("inotify: %v", err)
		}
		for b := buf[:n]; len(b) >= unix.SizeofInotifyEvent; {
			mask := binary.NativeEndian.Uint32(b[4:])
			l := int(binary.NativeEndian.Uint32(b[12:]))
			name := string(bytes.TrimRight(b[unix.SizeofInotifyEvent:unix.SizeofInotifyEvent+l], "\x00"))
			got[name] = append(got[name], mask&(unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_ATTRIB))
			b = b[unix.SizeofInotifyEvent+l:]
		}
		return got
	}
}

// withUmask runs f under the process umask mask. The tests that use it are
// not parallel: the umask is the process's, and the parallel tests of the
// package wait until every sequential one has finished.
func withUmask(mask int, f func()) {
	old := unix.Umask(mask)
	defer unix.Umask(old)
	f()
}

// TestSocketNeverReachableWithLaxMode: under umask 000, the socket must
// not appear at socket_path before it has its mode (before, bind created
// it 0777 there and a chmod followed, and another local user could connect
// in between). It appears by a rename, with its mode already set.
func TestSocketNeverReachableWithLaxMode(t *testing.T) {
	var f *fixture
	var events map[string][]uint32
	withUmask(0, func() {
		dir := socketDir(t)
		events0 := watchDir(t, dir)
		var err error
		f, err = newFixture(t, func(c *Config) { c.SocketPath = filepath.Join(dir, "ulogd2.sock") })
		if err != nil {
			t.Fatal(err)
		}
		events = events0()
	})
	defer f.in.Stop(context.Background())
	if got := events["ulogd2.sock"]; len(got) == 0 || got[0] != unix.IN_MOVED_TO {
		t.Errorf("events for the socket %#x; want IN_MOVED_TO (%#x) first, no IN_CREATE", got, unix.IN_MOVED_TO)
	}
	if fi, err := os.Lstat(f.path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket %v (%v), want mode 0600", fi.Mode(), err)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(f.path), ".ulogd-*"))
	if len(left) != 0 {
		t.Errorf("private directories left behind: %v", left)
	}
	f.dial(t) // it listens
}

// TestLongPathBindsUnderUmask: when the private directory's path would be
// too long for a socket address, the socket is bound in place under a
// restrictive umask, which is restored afterwards.
func TestLongPathBindsUnderUmask(t *testing.T) {
	dir := socketDir(t)
	long := filepath.Join(dir, strings.Repeat("d", maxPathLen-len(dir)-12))
	if err := os.Mkdir(long, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(long, "u.sock")
	var f *fixture
	var events map[string][]uint32
	withUmask(0, func() {
		events0 := watchDir(t, long)
		var err error
		f, err = newFixture(t, func(c *Config) { c.SocketPath = path; c.Perms = 0o660 })
		if err != nil {
			t.Fatal(err)
		}
		events = events0()
		if m := unix.Umask(0); m != 0 {
			t.Errorf("umask after start %#o, want 0 again", m)
		}
	})
	defer f.in.Stop(context.Background())
	if got := events["u.sock"]; len(got) == 0 || got[0] != unix.IN_CREATE {
		t.Errorf("events for the socket %#x; want IN_CREATE (bound in place)", got)
	}
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket %v (%v), want mode 0660", fi.Mode(), err)
	}
	f.dial(t)
}
