package sqldb

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/testutil"
)

// failDriver's connections hold every write until release is closed, then
// fail it (a connection lost while the database was slow).
type failDriver struct{ release chan struct{} }

func (d *failDriver) Dial(context.Context) (Conn, error) { return failConn{d}, nil }
func (d *failDriver) Peer() string                       { return "test" }

type failConn struct{ d *failDriver }

func (failConn) Columns(context.Context) ([]string, error) { return []string{"ct_mark"}, nil }
func (failConn) Prepare(context.Context, []string) error   { return nil }
func (c failConn) Write(context.Context, []Row) (int, error) {
	<-c.d.release
	return 0, errors.New("connection lost")
}
func (failConn) Close() error { return nil }

// TestDisabledFreesBlockedWalk: reconnect=0 with overflow=block. The
// queue is full and the walk waits for room when the write fails: the
// sink is disabled, and the walk goes on at once (its rows dropped and
// counted) instead of waiting until the daemon stops.
func TestDisabledFreesBlockedWalk(t *testing.T) {
	up := []keys.Bound{{Spec: keys.Spec{Name: "ct.mark", Type: keys.Uint32}, Slot: 0, Instance: "ct1"}}
	o := DefaultOptions()
	o.Table, o.Procedure, o.Reconnect = "t", "INSERT", 0
	o.QueueRecords, o.Overflow = 4, "block"
	d := &failDriver{release: make(chan struct{})}
	s := NewSink(&plugin.Env{Upstream: up, Log: slog.New(slog.DiscardHandler)},
		SinkConfig{Name: "TEST", Options: o, Driver: d, Drain: time.Second})
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	const n = 20
	r := keys.NewRecord([]keys.Type{keys.Uint32})
	done := make(chan struct{})
	go func() {
		for i := range n {
			r.SetUint(0, uint64(i))
			s.Interp(r)
		}
		close(done)
	}()
	// The writer holds a batch in its write; the queue fills behind it.
	testutil.WaitFor(t, 10*time.Second, "a full queue", func() bool { return s.Stats().Depth >= 4 })
	close(d.release)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("the walk still waits 20 s after the sink was disabled: %+v", s.Stats())
	}
	s.Stop(context.Background())
	if w, dr := s.Written(), s.Dropped(); w != 0 || dr != n {
		t.Errorf("written %d, dropped %d; want 0 and %d (every row counted)", w, dr, n)
	}
}

// downDriver never connects; it counts the attempts.
type downDriver struct{ dials atomic.Int32 }

func (d *downDriver) Dial(context.Context) (Conn, error) {
	d.dials.Add(1)
	return nil, errors.New("connection refused")
}
func (d *downDriver) Peer() string { return "down" }

// TestReconnectZeroDownAtStart: with reconnect=0, a database that is
// down at start is the one failure: the stack starts, the sink dials no
// more, and its rows are dropped and counted.
func TestReconnectZeroDownAtStart(t *testing.T) {
	up := []keys.Bound{{Spec: keys.Spec{Name: "ct.mark", Type: keys.Uint32}, Slot: 0, Instance: "ct1"}}
	o := DefaultOptions()
	o.Table, o.Procedure, o.Reconnect = "t", "INSERT", 0
	d := &downDriver{}
	s := NewSink(&plugin.Env{Upstream: up, Log: slog.New(slog.DiscardHandler)},
		SinkConfig{Name: "TEST", Options: o, Driver: d, Drain: time.Second})
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("Start with the database down: %v (the other stacks must run)", err)
	}
	testutil.WaitFor(t, 10*time.Second, "the sink to give up", s.disabled.Load)
	r := keys.NewRecord([]keys.Type{keys.Uint32})
	for i := range 10 {
		r.SetUint(0, uint64(i))
		s.Interp(r)
	}
	time.Sleep(2500 * time.Millisecond) // two of the writer's 1 s backoffs
	s.Stop(context.Background())
	if n := d.dials.Load(); n != 1 {
		t.Errorf("%d connection attempts, want 1 (reconnect=0)", n)
	}
	if dr := s.Dropped(); dr != 10 {
		t.Errorf("dropped %d, want 10", dr)
	}
}
