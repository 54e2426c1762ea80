// Package sinkq is the bounded queue between a stack's walk and a slow
// sink's writer goroutine, for every sink whose peer can be slow or absent
// (JSON's sockets, GRAPHITE, IPFIX, KAFKA, NATS and the SQL sinks).
//
// The walk encodes a record and hands the bytes to Push, which copies them
// into a ring and returns at once: under the Drop policy a record that does
// not fit (in records or in bytes) is dropped and counted; under Block, Push
// waits for room (the source stops reading, so the kernel's socket buffer
// and its loss counter take over). A Writer goroutine takes the queued
// records in batches (Peek), hands them to the sink's Peer (a connection,
// a database handle), removes what the peer took (Commit) and, when the
// peer fails, closes it and dials again with backoff; nothing queued is
// lost by a reconnection. At Stop the Writer drains the queue for a bounded
// time, then reports and counts as dropped what it could not write.
//
// The counters are exact and taken under one lock, so that at every moment
//
//	Enqueued = Written + Dropped + Depth
//
// where Enqueued counts every record handed to Push (also the ones the full
// queue refused), Written the records the peer took, Dropped every record
// discarded (full queue, unsendable, lost with a connection, left at Stop)
// and Depth the records waiting.
//
// A sink uses it in four places:
//
//	// Start: the queue, and a writer that dials the first peer.
//	s.q = sinkq.New(sinkq.Config{MaxBytes: 16 << 20, Policy: sinkq.Drop})
//	s.w = sinkq.NewWriter(s.q, sinkq.WriterConfig{Dial: s.dial, Log: log, Peer: "tcp:host:port", Texts: ...})
//	err := s.w.Start(ctx)
//	// Interp: encode into a scratch buffer, push a copy, never wait.
//	s.w.Push(s.encode(s.scratch[:0], r)); return plugin.Continue
//	// Reopen (SIGHUP): s.w.Reconnect(). Stop: err := s.w.Stop(ctx).
//	// Counters: s.q.Written(), s.q.Dropped().
//
// The sink's Peer (from Dial) sends one batch of whole records at a time
// and tells, when it is closed, how many records it had taken that never
// arrived (a TCP connection's unacknowledged bytes).
//
// The spool policy (spool.go) plugs a Spool in through Config.Overflow:
// the records that do not fit go to disk, and once something is spooled
// every new record goes there too (so that order is kept) until the writer
// has taken them all back; Stats.Spooled counts them, and the invariant
// becomes
//
//	Enqueued = Written + Dropped + Depth + Spooled
//
// where Enqueued also counts the records found spooled at start-up.
// Options (options.go) are the ulogd.conf options every such sink shares.
package sinkq

import (
	"errors"
	"sync"
	"sync/atomic"
)

// Policy says what Push does when the queue is full.
type Policy uint8

// Policies.
const (
	// Drop drops the new record and counts it: the walk never waits.
	Drop Policy = iota
	// Block makes Push wait until the writer made room (or the queue is
	// closed): the source stops reading and the kernel counts the loss.
	Block
	// SpoolPolicy writes what does not fit to Config.Overflow, a *Spool;
	// what the spool refuses (size cap, full disk) is dropped and counted.
	SpoolPolicy
)

func (p Policy) String() string {
	switch p {
	case Block:
		return "block"
	case SpoolPolicy:
		return "spool"
	}
	return "drop"
}

// ParsePolicy parses "drop", "block" or "spool".
func ParsePolicy(s string) (Policy, error) {
	switch s {
	case "drop", "":
		return Drop, nil
	case "block":
		return Block, nil
	case "spool":
		return SpoolPolicy, nil
	}
	return 0, errors.New(`overflow must be "drop", "block" or "spool"`)
}

// Overflow takes the records a full queue cannot hold, in place of
// dropping them: the interface point of the spool policy to come. Take
// returns false when it cannot take rec either (then rec is dropped).
// Take is called with the queue's lock held and must not block.
type Overflow interface {
	Take(rec []byte) bool
}

// Config bounds a Queue.
type Config struct {
	// MaxRecords and MaxBytes bound what waits in the queue; a record
	// longer than MaxBytes never fits. Zero means 65536 records and
	// 16 MiB.
	MaxRecords int
	MaxBytes   int
	Policy     Policy
	// Overflow, when set, is offered what does not fit before it is
	// dropped (Drop policy only).
	Overflow Overflow
}

// Stats is a consistent snapshot of a queue's counters.
type Stats struct {
	Enqueued uint64 // records handed to Push
	Written  uint64 // records the peer took
	Dropped  uint64 // records discarded
	Depth    uint64 // records waiting
	Bytes    uint64 // bytes waiting
	Spooled  uint64 // records waiting in the spool
}

// span is one queued record: buf[off:off+n].
type span struct{ off, n int }

// Queue is a bounded queue of byte records, one producer (the walk) and one
// consumer (the writer). Each record lies contiguous in the ring (a record
// that would wrap starts at the beginning instead), so that a batch is one
// slice.
type Queue struct {
	mu     sync.Mutex
	cfg    Config
	buf    []byte
	recs   []span // ring of cfg.MaxRecords
	rhead  int    // first record in recs
	tail   int    // byte offset after the last record
	used   int    // bytes from the first record's start to tail, gaps included
	closed bool

	enqueued, written, dropped uint64
	bytes                      int

	spool    *Spool // Config.Overflow, when it is a *Spool
	spooled  uint64 // records in the spool, counted in enqueued
	spooling bool   // the spool holds records: new ones go there too

	// lazy: Flush has been called, so Push leaves waking the writer to
	// Flush until wakeAt records or wakeBytes bytes wait (see Flush).
	lazy      atomic.Bool
	wakeAt    int           // records that wake the writer of a flushed queue
	wakeBytes int           // bytes that do
	wake      chan struct{} // a record was queued (for the writer)
	space     chan struct{} // room was made (for a blocked Push)
	done      chan struct{} // closed by Close
}

// New returns an empty queue.
func New(cfg Config) *Queue {
	if cfg.MaxRecords <= 0 {
		cfg.MaxRecords = 65536
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 16 << 20
	}
	q := &Queue{
		wakeAt:    min(lazyWakeAt, max(1, cfg.MaxRecords/4)),
		wakeBytes: max(1, cfg.MaxBytes/4),
		cfg:       cfg,
		buf:       make([]byte, cfg.MaxBytes),
		recs:      make([]span, cfg.MaxRecords),
		wake:      make(chan struct{}, 1),
		space:     make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
	if sp, ok := cfg.Overflow.(*Spool); ok {
		// What a previous run left in the spool is this queue's.
		q.spool = sp
		q.spooled = sp.Len()
		q.enqueued = q.spooled
		q.spooling = q.spooled > 0
	}
	return q
}

// Spool returns the queue's spool, or nil.
func (q *Queue) Spool() *Spool { return q.spool }

// Config returns the queue's bounds and policy.
func (q *Queue) Config() Config { return q.cfg }

// Wake is signalled (capacity 1) when a record is queued.
func (q *Queue) Wake() <-chan struct{} { return q.wake }

// Push copies rec (not empty) into the queue. It returns false when rec was
// dropped: the queue is full under Drop (and Overflow did not take it),
// or it is closed.
func (q *Queue) Push(rec []byte) bool {
	if len(rec) == 0 {
		panic("sinkq: empty record")
	}
	q.mu.Lock()
	for {
		if q.closed {
			q.enqueued++
			q.dropped++
			q.mu.Unlock()
			return false
		}
		if q.spooling {
			return q.toSpool(rec)
		}
		if q.put(rec) {
			q.enqueued++
			wake := !q.lazy.Load() || q.depth() >= q.wakeAt || q.bytes >= q.wakeBytes
			q.mu.Unlock()
			if wake {
				signal(q.wake)
			}
			return true
		}
		if q.cfg.Policy != Block || len(rec) > len(q.buf) {
			if q.spool != nil {
				return q.toSpool(rec)
			}
			if q.cfg.Overflow != nil && q.cfg.Overflow.Take(rec) {
				// Not this queue's record: the spool counts it.
				q.mu.Unlock()
				return true
			}
			q.enqueued++
			q.dropped++
			q.mu.Unlock()
			signal(q.wake)
			return false
		}
		q.mu.Unlock()
		signal(q.wake) // (a flushed queue's writer may not know yet)
		select {
		case <-q.space:
		case <-q.done:
		}
		q.mu.Lock()
	}
}

// lazyWakeAt is how many records wait before Push wakes the writer of a
// queue that is flushed (a burst is not held back to the end of its
// batch); a small queue wakes it at a quarter of its records or bytes,
// so that it does not fill while the writer sleeps.
const lazyWakeAt = 256

// Flush wakes the writer when records wait. A sink calls it from its own
// Flush, which the engine calls at the end of every receive batch and
// every second. From the first call on, Push no longer wakes the writer
// for each record (only once lazyWakeAt records wait, or a quarter of a
// smaller queue, and before it waits for room or drops): at 20k records a
// second the writer would otherwise be woken, and put back to sleep, for
// nearly every record. A record then waits at most until the end of its
// batch (about 4 ms while events stream).
func (q *Queue) Flush() {
	q.lazy.Store(true)
	q.mu.Lock()
	n := q.depth()
	q.mu.Unlock()
	if n > 0 {
		signal(q.wake)
	}
}

// toSpool hands rec to the spool and unlocks q.mu; q.mu is held.
func (q *Queue) toSpool(rec []byte) bool {
	q.enqueued++
	if !q.spool.Take(rec) {
		q.dropped++
		q.mu.Unlock()
		return false
	}
	q.spooled++
	q.spooling = true
	q.mu.Unlock()
	signal(q.wake)
	return true
}

// Refill moves spooled records back into the queue, oldest first, while
// they fit; the records the spool found corrupt are counted as dropped.
// Only the writer calls it (it reads the disk without holding the queue).
// It returns whether records are left in the spool.
func (q *Queue) Refill() bool {
	if q.spool == nil {
		return false
	}
	for {
		rec, corrupt := q.spool.Peek()
		q.mu.Lock()
		if corrupt > 0 {
			q.spooled -= uint64(corrupt)
			q.dropped += uint64(corrupt)
		}
		if rec == nil {
			// No Take runs while q.mu is held: empty stays empty.
			if q.spool.Len() == 0 {
				q.spooling = false
			}
			left := q.spooled > 0
			q.mu.Unlock()
			return left
		}
		if len(rec) > len(q.buf) {
			// Longer than this queue can ever hold (spooled by a run with
			// a larger queue_bytes): dropped and counted.
			q.spool.Advance()
			q.spooled--
			q.dropped++
			q.mu.Unlock()
			continue
		}
		if !q.put(rec) {
			q.mu.Unlock()
			return true
		}
		q.spool.Advance()
		q.spooled--
		q.mu.Unlock()
	}
}

// Spooled returns the records waiting in the spool.
func (q *Queue) Spooled() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.spooled
}

// closeSpool saves what is still queued in memory in front of the spool
// and closes it (Writer.Stop); what it could not save stays queued.
func (q *Queue) closeSpool() error {
	q.mu.Lock()
	var front [][]byte
	for k := range q.depth() {
		i := q.rhead + k
		if i >= len(q.recs) {
			i -= len(q.recs)
		}
		r := q.recs[i]
		front = append(front, q.buf[r.off:r.off+r.n])
	}
	saved, err := q.spool.Close(front)
	for range saved {
		r := q.recs[q.rhead]
		q.rhead++
		if q.rhead == len(q.recs) {
			q.rhead = 0
		}
		q.bytes -= r.n
		q.spooled++
	}
	if q.depth() == 0 {
		q.used, q.tail = 0, 0
	}
	q.mu.Unlock()
	return err
}

// put stores rec if it fits; q.mu is held.
func (q *Queue) put(rec []byte) bool {
	n, L := len(rec), len(q.buf)
	depth := q.depth()
	if depth == len(q.recs) {
		return false
	}
	var off int
	switch {
	case depth == 0:
		if n > L {
			return false
		}
		q.tail, q.used, off = 0, 0, 0
	case q.tail > q.recs[q.rhead].off:
		head := q.recs[q.rhead].off
		switch {
		case n <= L-q.tail:
			off = q.tail
		case n <= head:
			q.used += L - q.tail // the end of the ring stays unused
			off = 0
		default:
			return false
		}
	default: // tail ≤ head: the free part is [tail, head)
		if q.used == L || n > q.recs[q.rhead].off-q.tail {
			return false
		}
		off = q.tail
	}
	copy(q.buf[off:], rec)
	i := q.rhead + depth
	if i >= len(q.recs) {
		i -= len(q.recs)
	}
	q.recs[i] = span{off, n}
	q.tail = off + n
	q.used += n
	q.bytes += n
	return true
}

// depth is the number of queued records; q.mu is held.
func (q *Queue) depth() int {
	return int(q.enqueued - q.written - q.dropped - q.spooled)
}

// Batch is a run of queued records, contiguous in memory: record i is
// Data[Ends[i-1]:Ends[i]] (Ends[-1] = 0). It stays valid until Commit or
// Discard removes its records.
type Batch struct {
	Data []byte
	Ends []int
}

// Len is the number of records in b.
func (b *Batch) Len() int { return len(b.Ends) }

// Record returns record i of b.
func (b *Batch) Record(i int) []byte {
	start := 0
	if i > 0 {
		start = b.Ends[i-1]
	}
	return b.Data[start:b.Ends[i]]
}

// Peek fills b with up to max records from the head of the queue (as many
// as lie contiguous), without removing them; b is empty when the queue is.
// Only the writer calls it.
func (q *Queue) Peek(b *Batch, max int) {
	b.Data, b.Ends = nil, b.Ends[:0]
	q.mu.Lock()
	defer q.mu.Unlock()
	depth := q.depth()
	if depth == 0 {
		return
	}
	first := q.recs[q.rhead]
	end := first.off
	for k := 0; k < depth && k < max; k++ {
		i := q.rhead + k
		if i >= len(q.recs) {
			i -= len(q.recs)
		}
		r := q.recs[i]
		if r.off != end {
			break
		}
		end += r.n
		b.Ends = append(b.Ends, end-first.off)
	}
	b.Data = q.buf[first.off:end]
}

// Commit removes the first n records: the peer took them.
func (q *Queue) Commit(n int) {
	if n > 0 {
		q.remove(n, &q.written)
	}
}

// Discard removes the first n records, counting them dropped (a record the
// peer can never take, or what is left at Stop).
func (q *Queue) Discard(n int) {
	if n > 0 {
		q.remove(n, &q.dropped)
	}
}

func (q *Queue) remove(n int, counter *uint64) {
	q.mu.Lock()
	if d := q.depth(); n > d {
		n = d
	}
	for range n {
		r := q.recs[q.rhead]
		q.rhead++
		if q.rhead == len(q.recs) {
			q.rhead = 0
		}
		*counter++
		q.bytes -= r.n
		if q.depth() == 0 {
			q.used, q.tail = 0, 0
			break
		}
		next := q.recs[q.rhead].off
		q.used -= (next - r.off + len(q.buf)) % len(q.buf)
	}
	q.mu.Unlock()
	signal(q.space)
}

// Lost moves n records from written to dropped: the peer had taken them
// but they did not arrive (a connection that died with data unsent).
func (q *Queue) Lost(n int) {
	if n <= 0 {
		return
	}
	q.mu.Lock()
	n64 := min(uint64(n), q.written)
	q.written -= n64
	q.dropped += n64
	q.mu.Unlock()
}

// Close makes every later Push drop (and a blocked Push return).
func (q *Queue) Close() {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		close(q.done)
	}
	q.mu.Unlock()
}

// Stats returns the counters.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	return Stats{Enqueued: q.enqueued, Written: q.written, Dropped: q.dropped,
		Depth: uint64(q.depth()), Bytes: uint64(q.bytes), Spooled: q.spooled}
}

// Depth returns the number of records waiting.
func (q *Queue) Depth() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.depth()
}

// Dropped returns the records discarded so far (plugin.Dropper).
func (q *Queue) Dropped() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.dropped
}

// Written returns the records the peer took so far.
func (q *Queue) Written() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.written
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
