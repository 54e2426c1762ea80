package eventsock

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ulogd-go/ulogd/internal/logging"
)

// fakeSocket doubles what is set, as the kernel does, and reports a drop
// counter the test moves.
type fakeSocket struct {
	set      []int
	setErr   error
	drops    uint64
	dropsErr error
}

func (s *fakeSocket) SetReadBuffer(n int) (int, error) {
	s.set = append(s.set, n)
	if s.setErr != nil {
		return 0, s.setErr
	}
	return 2 * n, nil
}

func (s *fakeSocket) Drops() (uint64, error) { return s.drops, s.dropsErr }

type lostCount uint64

func (l *lostCount) Lost(n uint64)     { *l += lostCount(n) }
func (l *lostCount) Flush()            {}
func (l *lostCount) LostCount() uint64 { return uint64(*l) }

func newBuffer(name string, maxSize int) (*Buffer, *bytes.Buffer) {
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return &Buffer{Name: name, Log: log, MaxSize: maxSize}, &out
}

func TestSet(t *testing.T) {
	tests := []struct {
		name          string
		size, maxSize int
		want          int
	}{
		{"default", 0, 0, DefaultSize},
		{"default capped by the maximum", 0, 1 << 20, 1 << 20},
		{"default below the maximum", 0, 128 << 20, DefaultSize},
		{"set size applies whatever the maximum (compat N1)", 1 << 22, 1 << 20, 1 << 22},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, out := newBuffer("NFLOG", tt.maxSize)
			s := &fakeSocket{}
			b.Set(context.Background(), s, tt.size)
			if len(s.set) != 1 || s.set[0] != tt.want {
				t.Fatalf("SetReadBuffer calls %v, want [%d]", s.set, tt.want)
			}
			line := out.String()
			if !strings.Contains(line, "level=INFO+2") ||
				!strings.Contains(line, `msg="NFLOG netlink buffer size has been set to `+strconv.Itoa(2*tt.want)+`"`) {
				t.Errorf("log: %s", line)
			}
		})
	}
}

func TestSetError(t *testing.T) {
	b, out := newBuffer("NFCT", 0)
	b.Set(context.Background(), &fakeSocket{setErr: errors.New("nope")}, 4096)
	if line := out.String(); !strings.Contains(line, `level=WARN msg="NFCT cannot set the netlink socket buffer size" requested=4096 err=nope`) {
		t.Errorf("log: %s", line)
	}
}

func TestOverrunGrowsToMax(t *testing.T) {
	b, out := newBuffer("NFCT", 16384)
	s := &fakeSocket{}
	var lost lostCount
	b.Set(context.Background(), s, 4096)
	b.Baseline(s)
	for range 4 {
		s.drops += 3
		b.Overrun(s, &lost)
		b.Note = logging.Limiter{} // let every notice through
	}
	if want := []int{4096, 8192, 16384}; !slices.Equal(s.set, want) {
		t.Errorf("sizes set %v, want %v", s.set, want)
	}
	if lost != 12 || b.Overruns != 4 {
		t.Errorf("lost %d, overruns %d; want 12, 4", lost, b.Overruns)
	}
	log := out.String()
	for _, want := range []string{
		`msg="We are losing events, increasing buffer size to 16384" lost=3 overruns=1`,
		`msg="We are losing events, increasing buffer size to 32768" lost=6 overruns=2`,
		"msg=\"Maximum buffer size (16384) in NFCT has been reached. Please, consider rising `netlink_socket_buffer_size` and `netlink_socket_buffer_maxsize` clauses.\" lost=9 overruns=3",
		`msg="We are losing events" lost=12 overruns=4`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if n := strings.Count(log, "Maximum buffer size"); n != 1 {
		t.Errorf("maximum notice %d times, want once", n)
	}
}

func TestOverrunRateLimited(t *testing.T) {
	b, out := newBuffer("NFLOG", 0)
	s := &fakeSocket{dropsErr: errors.New("no meminfo")}
	var lost lostCount
	for range 5 {
		b.Overrun(s, &lost)
	}
	if lost != 5 {
		t.Errorf("lost %d, want one per overrun", lost)
	}
	log := out.String()
	if n := strings.Count(log, "We are losing events. Please, consider using the clauses `netlink_socket_buffer_size' and `netlink_socket_buffer_maxsize'"); n != 1 {
		t.Errorf("notice %d times within %v, want once:\n%s", n, logging.LimitEvery, log)
	}
	if len(s.set) != 0 {
		t.Errorf("buffer set without a maximum: %v", s.set)
	}
}

func TestSeqCounts(t *testing.T) {
	b, _ := newBuffer("NFLOG", 0)
	b.SeqCounts = true
	s := &fakeSocket{drops: 10}
	var lost lostCount
	b.Baseline(s)
	s.drops = 15
	b.Overrun(s, &lost)
	s.dropsErr = errors.New("gone")
	b.Overrun(s, &lost)
	if lost != 0 || b.Overruns != 2 {
		t.Errorf("lost %d, overruns %d: want no loss counted with SeqCounts", lost, b.Overruns)
	}
	s.dropsErr = nil
	s.drops = 20
	b.SeqCounts = false
	b.Overrun(s, &lost)
	if lost != 5 {
		t.Errorf("lost %d after the baseline moved to 15, want 5", lost)
	}
}

func TestPollDrops(t *testing.T) {
	b, _ := newBuffer("NFCT", 0)
	s := &fakeSocket{dropsErr: errors.New("no meminfo")}
	var lost lostCount
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	b.Baseline(s)
	if n, read := b.PollDrops(s, &lost, t0, true); n != 0 || read {
		t.Fatalf("unreadable counter: PollDrops = %d, %v", n, read)
	}
	s.dropsErr, s.drops = nil, 100
	b.Baseline(s)
	steps := []struct {
		at       time.Duration
		force    bool
		drops    uint64
		want     uint64
		wantRead bool
	}{
		{0, false, 104, 4, true},
		{500 * time.Millisecond, false, 110, 0, false},
		{600 * time.Millisecond, true, 110, 6, true},
		{1500 * time.Millisecond, false, 111, 0, false},
		{1600 * time.Millisecond, false, 111, 1, true},
		{2600 * time.Millisecond, false, 111, 0, true},
	}
	for _, st := range steps {
		s.drops = st.drops
		n, read := b.PollDrops(s, &lost, t0.Add(st.at), st.force)
		if n != st.want || read != st.wantRead {
			t.Errorf("+%v force=%v: PollDrops = %d, %v; want %d, %v", st.at, st.force, n, read, st.want, st.wantRead)
		}
	}
	if lost != 11 {
		t.Errorf("lost %d, want 11", lost)
	}
}

// TestSync checks that a drop the receive loop has not read yet is counted
// when the counters are about to be reported, from another goroutine.
func TestSync(t *testing.T) {
	b, _ := newBuffer("NFLOG", 0)
	s := &fakeSocket{drops: 40}
	var lost lostCount
	b.Baseline(s)
	s.drops = 43 // three drops since the receive loop last looked
	done := make(chan struct{})
	go func() { b.Sync(s, &lost); close(done) }()
	<-done
	if lost != 3 {
		t.Errorf("after Sync: lost %d, want 3", lost)
	}
	b.Sync(s, &lost) // nothing new
	if lost != 3 {
		t.Errorf("a second Sync counted again: %d", lost)
	}
	b.SeqCounts = true // losses come from sequence gaps: drops only move the baseline
	s.drops = 50
	b.Sync(s, &lost)
	if lost != 3 {
		t.Errorf("Sync with SeqCounts counted drops: %d", lost)
	}
}

// TestDropCounterWraps: the kernel's drop counter is 32 bits wide.
func TestDropCounterWraps(t *testing.T) {
	b, _ := newBuffer("NFCT", 0)
	s := &fakeSocket{drops: 1<<32 - 2}
	var lost lostCount
	b.Baseline(s)
	s.drops = 3 // wrapped: 2 + 3 drops
	b.Sync(s, &lost)
	if lost != 5 {
		t.Errorf("lost %d across the wrap, want 5", lost)
	}
}

// TestReliable: in reliable mode the drop counter counts failed deliveries
// the kernel attempts again, not losses.
func TestReliable(t *testing.T) {
	b, _ := newBuffer("NFCT", 0)
	b.Reliable = true
	s := &fakeSocket{drops: 7}
	var lost lostCount
	b.Baseline(s)
	s.drops = 19
	b.Sync(s, &lost)
	s.drops = 25
	if n, read := b.PollDrops(s, &lost, time.Now(), true); n != 0 || !read {
		t.Errorf("PollDrops = %d, %v; want 0 counted, read", n, read)
	}
	if lost != 0 || b.Retried.Load() != 18 {
		t.Errorf("reliable: lost %d, retried %d; want 0, 18", lost, b.Retried.Load())
	}
}
