package sinkq

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

func rec(i, size int) []byte {
	b := bytes.Repeat([]byte{byte('a' + i%26)}, size)
	binary.BigEndian.PutUint32(b, uint32(i))
	return b
}

func seq(r []byte) int { return int(binary.BigEndian.Uint32(r)) }

func checkInvariant(t testing.TB, q *Queue) Stats {
	t.Helper()
	s := q.Stats()
	if s.Enqueued != s.Written+s.Dropped+s.Depth+s.Spooled {
		t.Fatalf("enqueued %d != written %d + dropped %d + depth %d + spooled %d", s.Enqueued, s.Written, s.Dropped, s.Depth, s.Spooled)
	}
	return s
}

func TestDropWhenFullInRecordsAndBytes(t *testing.T) {
	q := New(Config{MaxRecords: 3, MaxBytes: 1000})
	for i := range 4 {
		ok := q.Push(rec(i, 10))
		if ok != (i < 3) {
			t.Fatalf("push %d = %v", i, ok)
		}
	}
	if s := checkInvariant(t, q); s.Dropped != 1 || s.Depth != 3 || s.Bytes != 30 {
		t.Fatalf("records bound: %+v", s)
	}
	q = New(Config{MaxRecords: 100, MaxBytes: 100})
	for i := range 5 {
		ok := q.Push(rec(i, 40))
		if ok != (i < 2) {
			t.Fatalf("push %d = %v", i, ok)
		}
	}
	if s := checkInvariant(t, q); s.Dropped != 3 || s.Depth != 2 || s.Bytes != 80 {
		t.Fatalf("bytes bound: %+v", s)
	}
	if q.Push(rec(9, 101)) {
		t.Fatal("a record longer than the queue was taken")
	}
}

// A record that does not fit at the end of the ring starts at its
// beginning: every record stays contiguous, in order.
func TestWrapKeepsRecordsWhole(t *testing.T) {
	q := New(Config{MaxRecords: 10, MaxBytes: 110}) // room for one record beside any other, however placed
	var b Batch
	next := 0
	for i := range 50 {
		if !q.Push(rec(i, 30+i%7)) {
			t.Fatalf("push %d dropped at depth %d", i, q.Depth())
		}
		if q.Depth() < 2 {
			continue
		}
		q.Peek(&b, 1)
		if b.Len() != 1 || seq(b.Record(0)) != next || len(b.Record(0)) != 30+next%7 {
			t.Fatalf("head record %d: % x", next, b.Data)
		}
		q.Commit(1)
		next++
		checkInvariant(t, q)
	}
}

func TestLostMovesWrittenToDropped(t *testing.T) {
	q := New(Config{})
	for i := range 5 {
		q.Push(rec(i, 8))
	}
	q.Commit(5)
	q.Lost(2)
	if s := checkInvariant(t, q); s.Written != 3 || s.Dropped != 2 {
		t.Fatalf("%+v", s)
	}
}

func TestClosedQueueDrops(t *testing.T) {
	q := New(Config{Policy: Block, MaxRecords: 1})
	q.Push(rec(0, 4))
	q.Close()
	if q.Push(rec(1, 4)) {
		t.Fatal("push after Close taken")
	}
	if s := checkInvariant(t, q); s.Dropped != 1 || s.Depth != 1 {
		t.Fatalf("%+v", s)
	}
}

type spool struct{ got [][]byte }

func (s *spool) Take(rec []byte) bool {
	s.got = append(s.got, bytes.Clone(rec))
	return len(s.got) <= 1
}

func TestOverflowTakesWhatDoesNotFit(t *testing.T) {
	sp := &spool{}
	q := New(Config{MaxRecords: 1, Overflow: sp})
	q.Push(rec(0, 4))
	if !q.Push(rec(1, 4)) || q.Push(rec(2, 4)) {
		t.Fatal("overflow not consulted")
	}
	if s := checkInvariant(t, q); s.Dropped != 1 || s.Depth != 1 || len(sp.got) != 2 {
		t.Fatalf("%+v, spool %d", s, len(sp.got))
	}
}

// FuzzCounters runs random pushes, batches, commits, discards and losses
// against a model FIFO: the invariant holds after every step, and the
// records come out whole and in order.
func FuzzCounters(f *testing.F) {
	f.Add([]byte{0x10, 0x81, 0x22, 0xc3, 0x01, 0x40, 0xff, 0x90})
	f.Add(bytes.Repeat([]byte{0x3f, 0x85}, 40))
	f.Fuzz(func(t *testing.T, ops []byte) {
		q := New(Config{MaxRecords: 7, MaxBytes: 200})
		var model [][]byte
		var b Batch
		n := 0
		for _, op := range ops {
			arg := int(op & 0x3f)
			switch op >> 6 {
			case 0, 1: // push
				r := rec(n, 4+arg)
				n++
				if q.Push(r) {
					model = append(model, r)
				}
			case 2: // peek and commit some
				q.Peek(&b, 1+arg%5)
				if b.Len() > len(model) {
					t.Fatalf("batch of %d, model holds %d", b.Len(), len(model))
				}
				for i := range b.Len() {
					if !bytes.Equal(b.Record(i), model[i]) {
						t.Fatalf("record %d of batch differs", i)
					}
				}
				k := min(b.Len(), arg%3+1)
				q.Commit(k)
				model = model[k:]
			case 3: // discard, or lose what was written
				if arg&1 == 0 {
					k := min(len(model), arg%4)
					q.Discard(k)
					model = model[k:]
				} else {
					q.Lost(arg % 3)
				}
			}
			if s := checkInvariant(t, q); s.Depth != uint64(len(model)) {
				t.Fatalf("depth %d, model %d", s.Depth, len(model))
			}
			var sum uint64
			for _, r := range model {
				sum += uint64(len(r))
			}
			if s := q.Stats(); s.Bytes != sum {
				t.Fatalf("bytes %d, model %d", s.Bytes, sum)
			}
		}
	})
}

func BenchmarkPushPeekCommit(b *testing.B) {
	for _, size := range []int{200, 1000} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			q := New(Config{})
			r := rec(1, size)
			var batch Batch
			b.ReportAllocs()
			b.SetBytes(int64(size))
			i := 0
			for b.Loop() {
				q.Push(r)
				if i++; i%64 == 0 {
					q.Peek(&batch, 1024)
					q.Commit(batch.Len())
				}
			}
		})
	}
}

// TestFlushWakes: Push wakes the writer for each record until the sink
// first calls Flush; then Flush wakes it, and Push only once lazyWakeAt
// records wait.
func TestFlushWakes(t *testing.T) {
	q := New(Config{MaxRecords: 1024, MaxBytes: 1 << 20})
	woken := func() bool {
		select {
		case <-q.Wake():
			return true
		default:
			return false
		}
	}
	q.Push([]byte("a"))
	if !woken() {
		t.Fatal("the first Push did not wake the writer")
	}
	q.Flush()
	if !woken() {
		t.Fatal("Flush with a record waiting did not wake the writer")
	}
	for i := 2; i < lazyWakeAt; i++ {
		q.Push([]byte("b"))
		if woken() {
			t.Fatalf("Push woke the writer with %d records waiting, after a Flush", i)
		}
	}
	q.Push([]byte("c"))
	if !woken() {
		t.Fatalf("Push did not wake the writer at %d records", lazyWakeAt)
	}
	var b Batch
	q.Peek(&b, 1024)
	q.Commit(b.Len())
	q.Flush()
	if woken() {
		t.Fatal("Flush of an empty queue woke the writer")
	}
}

// TestFlushedSmallQueueWakes: under overflow=block, a Push into a
// flushed queue that must wait for room wakes the writer first: the walk
// never waits for a writer that sleeps. (The thresholds are
// TestFlushWakeThresholds'.)
func TestFlushedSmallQueueWakes(t *testing.T) {
	for _, p := range []Policy{Block} {
		q := New(Config{MaxRecords: 16, MaxBytes: 1 << 16, Policy: p})
		q.Flush()
		stop := make(chan struct{})
		var taken atomic.Int64
		go func() {
			var b Batch
			for {
				select {
				case <-q.Wake():
				case <-stop:
					return
				}
				for q.Depth() > 0 {
					q.Peek(&b, 1024)
					taken.Add(int64(b.Len()))
					q.Commit(b.Len())
				}
			}
		}()
		done := make(chan struct{})
		go func() {
			for range 1000 {
				q.Push([]byte("record"))
			}
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("%v: 1000 pushes into a flushed queue of 16 did not end (%d taken)", p, taken.Load())
		}
		close(stop)
		if st := q.Stats(); p == Block && st.Dropped != 0 {
			t.Errorf("block: %d dropped", st.Dropped)
		}
	}
}

// TestFlushWakeThresholds: after a Flush, a queue smaller than
// lazyWakeAt wakes its writer at a quarter of its records, and any queue
// at a quarter of its bytes.
func TestFlushWakeThresholds(t *testing.T) {
	woken := func(q *Queue) bool {
		select {
		case <-q.Wake():
			return true
		default:
			return false
		}
	}
	q := New(Config{MaxRecords: 16, MaxBytes: 1 << 16})
	q.Flush()
	for i := 1; i < 4; i++ {
		if q.Push([]byte("r")); woken(q) {
			t.Fatalf("queue of 16: woken at %d records", i)
		}
	}
	if q.Push([]byte("r")); !woken(q) {
		t.Fatal("queue of 16: not woken at 4 records")
	}
	q = New(Config{MaxRecords: 1024, MaxBytes: 4096})
	q.Flush()
	if q.Push(make([]byte, 1023)); woken(q) {
		t.Fatal("woken at 1023 of 4096 bytes")
	}
	if q.Push([]byte("x")); !woken(q) {
		t.Fatal("not woken at a quarter of the bytes")
	}
}
