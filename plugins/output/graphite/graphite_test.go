package graphite

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ulogd-go/ulogd/internal/carbontest"
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/plugintest"
	"github.com/ulogd-go/ulogd/internal/testutil"
)

// fastTunables reconnect within milliseconds and drain briefly at stop.
func fastTunables() tunables {
	tun := defaultTunables()
	tun.backoffMin, tun.backoffMax = 20*time.Millisecond, 200*time.Millisecond
	tun.drain = 500 * time.Millisecond
	return tun
}

type testSink struct {
	*sink
	rec *keys.Record
}

// newTestSink builds a GRAPHITE instance sending to addr with prefix
// "test", not started.
func newTestSink(t *testing.T, addr string, tun tunables) *testSink {
	t.Helper()
	return newTestSinkWith(t, addr, tun, nil)
}

// newTestSinkWith is newTestSink with the options that set changes.
func newTestSinkWith(t *testing.T, addr string, tun tunables, set func(*Config)) *testSink {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	cfg := defaultConfig()
	cfg.Host, cfg.Port, cfg.Prefix = host, port, "test"
	if set != nil {
		set(cfg)
	}
	in, rec := plugintest.Inputs(inputs)
	inst, err := Descriptor().New(&plugin.Env{Config: cfg, In: in, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	s := inst.(*sink)
	s.tun = tun
	return &testSink{sink: s, rec: rec}
}

func (s *testSink) start(t *testing.T) {
	t.Helper()
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(context.Background()) })
}

// event walks one record through the sink.
func (s *testSink) event(t *testing.T, name string, pkts, bytes, ts uint64) {
	t.Helper()
	s.rec.SetString(s.in[inName], name)
	s.rec.SetUint(s.in[inPkts], pkts)
	s.rec.SetUint(s.in[inBytes], bytes)
	s.rec.SetUint(s.in[inTime], ts)
	if v := s.Interp(s.rec); v != plugin.Continue {
		t.Fatalf("Interp = %v", v)
	}
	s.rec.Reset()
}

// TestCarbon: both lines of each object reach Carbon's whisper files with
// the record's time, or the current time when the record has none.
func TestCarbon(t *testing.T) {
	c := carbontest.Start(t)
	s := newTestSink(t, c.Addr(), fastTunables())
	s.start(t)
	ts := uint64(time.Now().Unix() - 30)
	s.event(t, "alpha", 3, 252, ts)
	s.event(t, "big", 1<<40, 1<<50, ts)
	before := time.Now().Unix()
	s.event(t, "now", 7, 8, 0)
	c.WaitPoint(t, "test.alpha.pkts", int64(ts), 3)
	c.WaitPoint(t, "test.alpha.bytes", int64(ts), 252)
	c.WaitPoint(t, "test.big.pkts", int64(ts), 1<<40)
	c.WaitPoint(t, "test.big.bytes", int64(ts), 1<<50)
	c.WaitFor(t, "test.now.pkts stamped now", func() bool {
		for at, v := range c.Points(t, "test.now.pkts") {
			if v == 7 && at >= before && at <= time.Now().Unix() {
				return true
			}
		}
		return false
	})
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s.Written() != 3 || s.Dropped() != 0 {
		t.Errorf("written %d, dropped %d; want 3, 0", s.Written(), s.Dropped())
	}
}

// TestCarbonRestart: when Carbon restarts, the sink connects again and
// sends what was queued meanwhile; nothing is lost or counted twice.
func TestCarbonRestart(t *testing.T) {
	c := carbontest.Start(t)
	s := newTestSink(t, c.Addr(), fastTunables())
	s.start(t)
	ts := uint64(time.Now().Unix() - 60)
	s.event(t, "r", 1, 10, ts)
	c.WaitPoint(t, "test.r.pkts", int64(ts), 1)
	c.Stop(t)
	qs := s.out.(*queueSender)
	c.WaitFor(t, "the sink to notice the closed connection", func() bool { return !qs.w.Connected() })
	s.event(t, "r", 2, 20, ts+1) // queued while Carbon is down
	c.Restart(t)
	s.event(t, "r", 3, 30, ts+2)
	c.WaitPoint(t, "test.r.pkts", int64(ts+1), 2)
	c.WaitPoint(t, "test.r.bytes", int64(ts+2), 30)
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s.Written() != 3 || s.Dropped() != 0 || qs.w.Connects() < 2 {
		t.Errorf("written %d, dropped %d, connections %d; want 3, 0, at least 2", s.Written(), s.Dropped(), qs.w.Connects())
	}
}

// stalled accepts connections and never reads: the kernel's buffers fill
// and then writes block.
func stalled(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return l.Addr().String()
}

// TestStalledServerNeverBlocks: a server that stops reading never holds
// the walk: records beyond the queue's bound are dropped and counted, and
// at every moment each record is written, dropped or queued.
func TestStalledServerNeverBlocks(t *testing.T) {
	tun := fastTunables()
	tun.drain = 100 * time.Millisecond
	s := newTestSinkWith(t, stalled(t), tun, func(c *Config) { c.QueueRecords = 64 })
	s.start(t)
	const n = 200_000 // ~13 MB of lines: more than the socket buffers hold
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			s.event(t, "stall", uint64(i), uint64(i), 1)
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Interp blocked on a server that does not read")
	}
	qs := s.out.(*queueSender)
	st := qs.q.Stats()
	if st.Enqueued != n || st.Written+st.Dropped+st.Depth != n || st.Dropped == 0 {
		t.Errorf("%+v: want %d enqueued = written + dropped + depth, some dropped", st, n)
	}
	s.Stop(context.Background()) // an error when records were left queued
	if w, d := s.Written(), s.Dropped(); w+d != n {
		t.Errorf("after Stop: written %d + dropped %d != %d", w, d, n)
	}
}

// TestStalledServerSpools: with overflow=spool, what a server that stops
// reading leaves is spooled, not dropped (the same queue drops without
// the spool: TestStalledServerNeverBlocks), and what is queued at stop
// goes to the spool too.
func TestStalledServerSpools(t *testing.T) {
	tun := fastTunables()
	tun.drain = 100 * time.Millisecond
	dir := t.TempDir() + "/spool"
	s := newTestSinkWith(t, stalled(t), tun, func(c *Config) {
		c.QueueRecords, c.Overflow, c.SpoolDir = 64, "spool", dir
	})
	s.start(t)
	const n = 200_000
	for i := range n {
		s.event(t, "stall", uint64(i), uint64(i), 1)
	}
	st := s.out.(*queueSender).q.Stats()
	if st.Enqueued != n || st.Dropped != 0 || st.Spooled == 0 || st.Written+st.Depth+st.Spooled != n {
		t.Errorf("%+v: want %d enqueued = written + depth + spooled, none dropped", st, n)
	}
	// At stop, the queue goes to the spool for the next start; what the
	// kernel held for the server that never read is lost, and counted.
	s.Stop(context.Background())
	st = s.out.(*queueSender).q.Stats()
	if st.Spooled == 0 || st.Written+st.Dropped+st.Spooled != n {
		t.Errorf("after Stop: %+v: want %d = written + dropped + spooled", st, n)
	}
}

// TestStartFailsWithoutServer: as in ulogd2, a server that cannot be
// reached fails the start.
func TestStartFailsWithoutServer(t *testing.T) {
	addr := "127.0.0.1:" + strconv.Itoa(testutil.FreePort(t))
	s := newTestSink(t, addr, fastTunables())
	err := s.Start(context.Background())
	if err == nil {
		s.Stop(context.Background())
		t.Fatal("started without a server")
	}
	if want := "GRAPHITE: can't connect to " + addr; len(err.Error()) < len(want) || err.Error()[:len(want)] != want {
		t.Errorf("error %q, want it to start with %q", err, want)
	}
}

// TestInterpAllocs: formatting and queueing an object allocates nothing.
func TestInterpAllocs(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go io.Copy(io.Discard, c)
		}
	}()
	s := newTestSink(t, l.Addr().String(), fastTunables())
	s.start(t)
	if a := testutil.AllocsPerCall(1000, func() { s.event(t, "alloc", 1, 2, 3) }); a != 0 {
		t.Errorf("%v allocations per record", a)
	}
}

func BenchmarkInterp(b *testing.B) {
	in, rec := plugintest.Inputs(inputs)
	s := &sink{in: in, prefix: "netfilter.nfacct", now: time.Now, out: discard{}}
	for b.Loop() {
		rec.SetString(in[inName], "http-in")
		rec.SetUint(in[inPkts], 1234)
		rec.SetUint(in[inBytes], 567890)
		rec.SetUint(in[inTime], 1795630804)
		s.Interp(rec)
		rec.Reset()
	}
}

type discard struct{}

func (discard) Start(context.Context) error { return nil }
func (discard) Push([]byte) bool            { return true }
func (discard) Stop(context.Context) error  { return nil }
func (discard) Dropped() uint64             { return 0 }
func (discard) Written() uint64             { return 0 }
