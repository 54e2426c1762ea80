package sinkq

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// memPeer is a Peer in memory: what it takes goes to a shared log; a test
// makes it fail, stall or go away.
type memPeer struct {
	srv       *memServer
	gone      chan struct{}
	interrupt chan struct{}
	lose      int // records Close reports lost
}

type memServer struct {
	mu      sync.Mutex
	got     []int // seqs received
	dials   int
	refuse  bool          // Dial fails
	failAt  int           // Write fails after this many records in total (0: never)
	stall   bool          // Write blocks until interrupted
	peers   []*memPeer    // every peer dialled
	dialErr error         // returned when refusing
	dialled chan struct{} // signalled on each successful dial
}

func newServer() *memServer { return &memServer{dialled: make(chan struct{}, 100)} }

func (s *memServer) dial(context.Context) (Peer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refuse {
		return nil, errors.New("connection refused")
	}
	s.dials++
	p := &memPeer{srv: s, gone: make(chan struct{}), interrupt: make(chan struct{}, 1)}
	s.peers = append(s.peers, p)
	s.dialled <- struct{}{}
	return p, nil
}

func (s *memServer) received() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.got...)
}

func (p *memPeer) Write(b *Batch) (int, int, error) {
	p.srv.mu.Lock()
	stall := p.srv.stall
	p.srv.mu.Unlock()
	if stall {
		<-p.interrupt
		return 0, 0, errors.New("i/o timeout")
	}
	p.srv.mu.Lock()
	defer p.srv.mu.Unlock()
	for i := range b.Len() {
		if p.srv.failAt > 0 && len(p.srv.got) == p.srv.failAt {
			p.srv.failAt = 0
			return i, 0, errors.New("broken pipe")
		}
		p.srv.got = append(p.srv.got, seq(b.Record(i)))
	}
	return b.Len(), 0, nil
}

func (p *memPeer) Close() int            { return p.lose }
func (p *memPeer) Interrupt()            { signal(p.interrupt) }
func (p *memPeer) Gone() <-chan struct{} { return p.gone }

func wantSeqs(t *testing.T, got []int, from, to int) {
	t.Helper()
	if len(got) != to-from {
		t.Fatalf("received %d records, want %d: %v", len(got), to-from, got)
	}
	for i, s := range got {
		if s != from+i {
			t.Fatalf("record %d is seq %d", i, s)
		}
	}
}

// startWriter starts a Writer on a queue with the given bounds, to a
// memServer that stalls every Write when stall is set.
func startWriter(t *testing.T, qc Config, stall bool) (*memServer, *Queue, *Writer, *bytes.Buffer) {
	srv := newServer()
	srv.stall = stall
	log := &bytes.Buffer{}
	q := New(qc)
	w := NewWriter(q, WriterConfig{Dial: srv.dial, Peer: "mem:1",
		Log: slog.New(slog.NewTextHandler(log, nil)),
		Texts: Texts{Full: "queue full", SendError: "failure sending", Redial: "can't reconnect",
			Connected: "connected", DropStop: "dropped in all"}})
	if err := w.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return srv, q, w, log
}

func TestWriterReconnectsWithBackoffAndLosesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, q, w, log := startWriter(t, Config{}, false)
		<-srv.dialled
		srv.mu.Lock()
		srv.failAt = 5
		srv.mu.Unlock()
		for i := range 10 {
			w.Push(rec(i, 16))
		}
		synctest.Wait()
		// The peer failed young: the writer waits BackoffMin before the
		// next attempt, and the records wait in the queue.
		if got := srv.received(); len(got) != 5 || q.Depth() != 5 {
			t.Fatalf("received %v, depth %d", got, q.Depth())
		}
		start := time.Now()
		<-srv.dialled
		if d := time.Since(start); d != time.Second {
			t.Errorf("reconnected after %v, want the 1 s backoff", d)
		}
		synctest.Wait()
		wantSeqs(t, srv.received(), 0, 10)
		// The peer goes away by itself, the next dial is refused twice:
		// 1 s, then 2 s between attempts.
		srv.mu.Lock()
		srv.refuse = true
		p := srv.peers[len(srv.peers)-1]
		srv.mu.Unlock()
		time.Sleep(time.Minute) // an old connection: the first retry is at once
		close(p.gone)
		synctest.Wait()
		if w.Connected() {
			t.Fatal("still connected after the peer went away")
		}
		w.Push(rec(10, 16))
		time.Sleep(3*time.Second - time.Nanosecond)
		srv.mu.Lock()
		srv.refuse = false
		srv.mu.Unlock()
		<-srv.dialled
		synctest.Wait()
		wantSeqs(t, srv.received(), 0, 11)
		if err := w.Stop(t.Context()); err != nil {
			t.Fatal(err)
		}
		if s := checkInvariant(t, q); s.Written != 11 || s.Dropped != 0 {
			t.Fatalf("%+v", s)
		}
		// (The refused dials follow the peer's loss within 10 s: one
		// notice for both.)
		for _, want := range []string{"failure sending: broken pipe", "failure sending: connection closed by peer",
			"connected"} {
			if !strings.Contains(log.String(), want) {
				t.Errorf("log lacks %q:\n%s", want, log.String())
			}
		}
	})
}

func TestStopDrainsWithinItsBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, q, w, log := startWriter(t, Config{}, false)
		srv.mu.Lock()
		srv.stall = true
		srv.mu.Unlock()
		for i := range 7 {
			w.Push(rec(i, 16))
		}
		synctest.Wait()
		start := time.Now()
		err := w.Stop(t.Context())
		if d := time.Since(start); d != 2*time.Second {
			t.Errorf("Stop took %v, want the 2 s drain bound", d)
		}
		if err == nil || !strings.Contains(err.Error(), "7 records not sent to mem:1") {
			t.Errorf("Stop = %v", err)
		}
		if s := checkInvariant(t, q); s.Dropped != 7 || s.Depth != 0 {
			t.Fatalf("%+v", s)
		}
		if !strings.Contains(log.String(), "dropped in all") {
			t.Errorf("no drop total at stop:\n%s", log.String())
		}
		if w.Push(rec(8, 4)) {
			t.Error("push after Stop taken")
		}
	})
}

func TestBlockPolicyWaitsForRoom(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, q, w, _ := startWriter(t, Config{MaxRecords: 2, Policy: Block}, true)
		pushed := make(chan int, 10)
		go func() {
			for i := range 5 {
				w.Push(rec(i, 8))
				pushed <- i
			}
		}()
		synctest.Wait()
		// One record is in the stalled Write, two more fill the queue:
		// the walk waits (it does not drop).
		if len(pushed) != 2 || q.Dropped() != 0 {
			t.Fatalf("%d pushed, %d dropped while the peer stalls", len(pushed), q.Dropped())
		}
		srv.mu.Lock()
		srv.stall = false
		srv.mu.Unlock()
		w.Reconnect()           // interrupts the stalled write; the record is sent again
		time.Sleep(time.Second) // the connection died young: 1 s backoff
		synctest.Wait()
		if len(pushed) != 5 {
			t.Fatalf("%d pushed after the peer caught up", len(pushed))
		}
		if err := w.Stop(t.Context()); err != nil {
			t.Fatal(err)
		}
		wantSeqs(t, srv.received(), 0, 5)
		if s := checkInvariant(t, q); s.Written != 5 {
			t.Fatalf("%+v", s)
		}
	})
}

func TestDropIsLoggedWhenItHappens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, q, w, log := startWriter(t, Config{MaxRecords: 1}, true)
		w.Push(rec(0, 8))
		synctest.Wait() // in the stalled write, still queued
		for i := 1; i < 10; i++ {
			if w.Push(rec(i, 8)) {
				t.Fatal("push into a full queue taken")
			}
		}
		if n := strings.Count(log.String(), "queue full"); n != 1 {
			t.Fatalf("%d drop notices, want 1 (rate-limited):\n%s", n, log.String())
		}
		time.Sleep(10 * time.Second)
		w.Push(rec(10, 8))
		if n := strings.Count(log.String(), "queue full"); n != 2 {
			t.Fatalf("%d drop notices after 10 s, want 2", n)
		}
		w.Stop(t.Context())
		if s := checkInvariant(t, q); s.Dropped != 11 {
			t.Fatalf("%+v", s)
		}
	})
}

func TestLostAtCloseCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, q, w, log := startWriter(t, Config{}, false)
		for i := range 4 {
			w.Push(rec(i, 8))
		}
		synctest.Wait()
		srv.mu.Lock()
		p := srv.peers[0]
		srv.mu.Unlock()
		p.lose = 3 // the kernel still held three records when it died
		close(p.gone)
		synctest.Wait()
		w.Stop(t.Context())
		if s := checkInvariant(t, q); s.Written != 1 || s.Dropped != 3 {
			t.Fatalf("%+v", s)
		}
		if !strings.Contains(log.String(), "lost_unsent=3") {
			t.Errorf("loss not logged:\n%s", log.String())
		}
	})
}

// The invariant holds at every moment while the walk pushes, the writer
// sends and the queue overflows, seen from a third goroutine.
func TestInvariantWhileRunning(t *testing.T) {
	srv, q, w, _ := startWriter(t, Config{MaxRecords: 16, MaxBytes: 1024}, false)
	const total = 20000
	done := make(chan struct{})
	samples := 0
	go func() {
		defer close(done)
		for {
			s := q.Stats()
			if s.Enqueued != s.Written+s.Dropped+s.Depth {
				t.Errorf("enqueued %d != written %d + dropped %d + depth %d", s.Enqueued, s.Written, s.Dropped, s.Depth)
				return
			}
			samples++
			if s.Enqueued == total && s.Depth == 0 {
				return
			}
		}
	}()
	for i := range total {
		w.Push(rec(i, 8+i%40))
	}
	<-done
	if err := w.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := srv.received()
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("seq %d after %d", got[i], got[i-1])
		}
	}
	if s := checkInvariant(t, q); s.Written != uint64(len(got)) || s.Written+s.Dropped != total {
		t.Fatalf("%+v, %d received", s, len(got))
	}
	t.Logf("%d samples; %d written, %d dropped", samples, q.Written(), q.Dropped())
}
