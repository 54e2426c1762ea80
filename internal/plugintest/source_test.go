package plugintest

import (
	"context"
	"errors"
	"testing"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
)

var specs = []keys.Spec{
	{Name: "a", Type: keys.Uint32},
	{Name: "b", Type: keys.String},
}

func value(k keys.Spec, r *keys.Record, s keys.Slot) any {
	if k.Type.IsInteger() {
		return r.Uint(s)
	}
	return string(r.Bytes(s))
}

func TestRecorder(t *testing.T) {
	e := NewRecorder(specs, value)
	r := e.NewRecord()
	r.SetUint(0, 7)
	r.SetString(1, "x")
	e.Emit(r)
	if r.Valid(0) || r.Valid(1) {
		t.Error("record not reset after Emit")
	}
	r.SetUint(0, 8)
	e.Emit(r)
	e.Lost(3)
	e.Lost(2)
	e.Flush()
	e.Next(t, 2)
	got := e.Records()
	if len(got) != 2 || got[0]["a"] != uint64(7) || got[0]["b"] != "x" || got[1]["a"] != uint64(8) || len(got[1]) != 1 {
		t.Errorf("Records = %v", got)
	}
	if m := e.Matching(func(v Values) bool { return v["a"] == uint64(8) }); len(m) != 1 {
		t.Errorf("Matching = %v", m)
	}
	if e.LostCount() != 5 || e.Flushes() != 1 {
		t.Errorf("lost %d, flushes %d", e.LostCount(), e.Flushes())
	}
	go func() {
		r := e.NewRecord()
		r.SetUint(0, 9)
		e.Emit(r)
	}()
	e.Next(t, 1)
	if got := e.WaitMatching(t, "a=9", 1, func(v Values) bool { return v["a"] == uint64(9) }); len(got) != 1 {
		t.Errorf("WaitMatching = %v", got)
	}
}

func TestDiscard(t *testing.T) {
	e := NewDiscard(specs)
	r := e.NewRecord()
	if n := testing.AllocsPerRun(100, func() {
		r.SetUint(0, 1)
		e.Emit(r)
		e.Lost(1)
	}); n != 0 {
		t.Errorf("%v allocations per event", n)
	}
	if e.Emitted != 101 || e.Losses != 101 || r.Valid(0) {
		t.Errorf("emitted %d, losses %d, valid %v", e.Emitted, e.Losses, r.Valid(0))
	}
}

// stoppable runs until Stop or ctx, then returns err.
type stoppable struct {
	stop    chan struct{}
	err     error
	stopped int
}

func (s *stoppable) Start(context.Context) error { return nil }
func (s *stoppable) Stop(context.Context) error {
	if s.stopped++; s.stopped == 1 {
		close(s.stop)
	}
	return nil
}
func (s *stoppable) Run(ctx context.Context, e plugin.Emitter) error {
	select {
	case <-ctx.Done():
	case <-s.stop:
	}
	return s.err
}

func TestSource(t *testing.T) {
	s := &stoppable{stop: make(chan struct{})}
	src := NewSource(t, s)
	src.Run(context.Background(), NewDiscard(specs))
	src.Stop()
	src.Stop()
	if s.stopped != 2 {
		t.Errorf("instance stopped %d times, want 2", s.stopped)
	}

	s = &stoppable{stop: make(chan struct{})}
	src = NewSource(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	src.Run(ctx, NewDiscard(specs))
	cancel()
	src.Wait()

	var ft fakeT
	s = &stoppable{stop: make(chan struct{}), err: errors.New("boom")}
	src = &Source{t: &ft, inst: s}
	src.Run(context.Background(), NewDiscard(specs))
	src.Stop()
	if ft.errors != 1 {
		t.Errorf("a Run error reported %d times, want once", ft.errors)
	}
}

type fakeT struct {
	testing.TB
	errors int
}

func (f *fakeT) Errorf(string, ...any) { f.errors++ }
