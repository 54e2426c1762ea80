package plugintest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/testutil"
)

// Values is one record as a Recorder keeps it: key name → the value its
// Recorder's value function made of it. Invalid keys are absent.
type Values = map[string]any

// ValueFunc turns the value of key k, valid in slot s of r, into what a
// test compares (a copy: r is reset after Emit).
type ValueFunc func(k keys.Spec, r *keys.Record, s keys.Slot) any

// Snapshot returns the values of r's valid keys, slot i being key specs[i],
// as value makes them.
func Snapshot(specs []keys.Spec, r *keys.Record, value ValueFunc) Values {
	v := Values{}
	for i, k := range specs {
		if s := keys.Slot(i); r.Valid(s) {
			v[k.Name] = value(k, r, s)
		}
	}
	return v
}

// Recorder is the plugin.Emitter a source test runs a source instance
// with: it keeps the values of every emitted record (and resets the
// record, as the real emitter does), and counts Lost and Flush. Record
// slot i is output key i. It is safe for concurrent use.
type Recorder struct {
	specs []keys.Spec
	types []keys.Type
	value ValueFunc

	mu     sync.Mutex
	recs   []Values
	waited int           // records Next has returned for
	more   chan struct{} // signalled on Emit
	lost   atomic.Uint64
	flush  atomic.Uint64
	// flushed is how many records had been emitted at the last Flush.
	flushed int
}

// NewRecorder returns a Recorder for a source whose output keys are specs;
// value converts each valid key of an emitted record.
func NewRecorder(specs []keys.Spec, value ValueFunc) *Recorder {
	return &Recorder{specs: specs, types: typesOf(specs), value: value, more: make(chan struct{}, 1)}
}

func typesOf(specs []keys.Spec) []keys.Type {
	types := make([]keys.Type, len(specs))
	for i, k := range specs {
		types[i] = k.Type
	}
	return types
}

// NewRecord implements plugin.Emitter.
func (e *Recorder) NewRecord() *keys.Record { return keys.NewRecord(e.types) }

// Emit implements plugin.Emitter: it keeps the record's values and resets
// it.
func (e *Recorder) Emit(r *keys.Record) {
	v := Snapshot(e.specs, r, e.value)
	e.mu.Lock()
	e.recs = append(e.recs, v)
	e.mu.Unlock()
	r.Reset()
	select {
	case e.more <- struct{}{}:
	default:
	}
}

// Flush implements plugin.Emitter: it is counted, and so are the records
// emitted before it.
func (e *Recorder) Flush() {
	e.mu.Lock()
	e.flushed = len(e.recs)
	e.mu.Unlock()
	e.flush.Add(1)
}

// FlushedThrough returns how many records had been emitted at the last
// Flush: what a buffering sink would have written by then.
func (e *Recorder) FlushedThrough() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.flushed
}

// Lost implements plugin.Emitter: n is added to LostCount.
func (e *Recorder) Lost(n uint64) { e.lost.Add(n) }

// LostCount returns the sum of the Lost calls.
func (e *Recorder) LostCount() uint64 { return e.lost.Load() }

// Flushes returns the number of Flush calls.
func (e *Recorder) Flushes() uint64 { return e.flush.Load() }

// Records returns the records emitted so far, oldest first.
func (e *Recorder) Records() []Values {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Values(nil), e.recs...)
}

// Matching returns the records for which keep is true.
func (e *Recorder) Matching(keep func(Values) bool) []Values {
	var out []Values
	for _, r := range e.Records() {
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}

// Wait polls cond until it holds; after timeout it fails the test, naming
// what it waited for.
func (e *Recorder) Wait(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	if !testutil.Eventually(timeout, cond) {
		t.Fatalf("timed out waiting for %s; %s", what, e.summary())
	}
}

// WaitMatching waits up to 10 s for n records for which keep is true and
// returns those there are then (n or more).
func (e *Recorder) WaitMatching(t testing.TB, what string, n int, keep func(Values) bool) []Values {
	t.Helper()
	var got []Values
	e.Wait(t, what, 10*time.Second, func() bool {
		got = e.Matching(keep)
		return len(got) >= n
	})
	return got
}

// Next waits up to 10 s until n more records than the previous calls
// waited for were emitted.
func (e *Recorder) Next(t testing.TB, n int) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		e.mu.Lock()
		have := len(e.recs)
		if have >= e.waited+n {
			e.waited += n
			e.mu.Unlock()
			return
		}
		e.mu.Unlock()
		select {
		case <-e.more:
		case <-timeout:
			t.Fatalf("timed out waiting for events; have %d", have)
		}
	}
}

// summary describes the records for a failure message: their number, and
// the records themselves when there are few.
func (e *Recorder) summary() string {
	recs := e.Records()
	if len(recs) > 10 {
		return fmt.Sprintf("%d records", len(recs))
	}
	return fmt.Sprintf("%d records: %v", len(recs), recs)
}

// Discard is the plugin.Emitter of allocation tests and benchmarks: it
// counts the records and resets them, and adds up the losses. It does not
// allocate.
type Discard struct {
	types   []keys.Type
	Emitted int    // records emitted
	Losses  uint64 // sum of the Lost calls
}

// NewDiscard returns a Discard for a source whose output keys are specs.
func NewDiscard(specs []keys.Spec) *Discard { return &Discard{types: typesOf(specs)} }

// NewRecord implements plugin.Emitter.
func (e *Discard) NewRecord() *keys.Record { return keys.NewRecord(e.types) }

// Emit implements plugin.Emitter.
func (e *Discard) Emit(r *keys.Record) { e.Emitted++; r.Reset() }

// Flush implements plugin.Emitter.
func (e *Discard) Flush() {}

// Lost implements plugin.Emitter.
func (e *Discard) Lost(n uint64) { e.Losses += n }

// Source runs a started source instance the way the stack does: Run in
// its own goroutine until Stop.
type Source struct {
	t    testing.TB
	inst plugin.SourceInstance
	done chan error
}

// NewSource returns a Source for inst, which the caller has started; the
// test's cleanup stops it.
func NewSource(t testing.TB, inst plugin.SourceInstance) *Source {
	s := &Source{t: t, inst: inst}
	t.Cleanup(s.Stop)
	return s
}

// Run runs the instance with ctx and e in a new goroutine.
func (s *Source) Run(ctx context.Context, e plugin.Emitter) {
	s.done = make(chan error, 1)
	go func(done chan<- error) { done <- s.inst.Run(ctx, e) }(s.done)
}

// Stop stops the instance and waits for Run, as Wait does; an error
// from Stop fails the test. It may be called again.
func (s *Source) Stop() {
	if err := s.inst.Stop(context.Background()); err != nil {
		s.t.Errorf("Stop = %v", err)
	}
	s.Wait()
}

// Wait waits up to 5 s for Run (if it was called) to return, after Stop
// or the cancellation of its context; an error, or a Run still going
// then, fails the test.
func (s *Source) Wait() {
	if s.done == nil {
		return
	}
	select {
	case err := <-s.done:
		if err != nil {
			s.t.Errorf("Run = %v", err)
		}
	case <-time.After(5 * time.Second):
		s.t.Errorf("Run did not return within 5s")
	}
	s.done = nil
}
