package stack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
)

// Counters are the per-instance event counters. Sources count received
// (emitted) and lost events; filters and sinks count what they stopped or
// failed. A sink's written and dropped records are its own counters
// (plugin.WriteCounter, plugin.Dropper): a record a sink keeps to write
// later is not a failure.
type Counters struct {
	Received atomic.Uint64 // events that reached this instance
	Stopped  atomic.Uint64 // walks ended here with Stop
	Failed   atomic.Uint64 // walks ended here with Fail
	Lost     atomic.Uint64 // events the source knows it lost
}

// runner is the Emitter of one source: it serialises the walks of every
// stack the source feeds.
type runner struct {
	src      *Source
	mu       sync.Mutex
	log      *slog.Logger
	lastFail atomic.Int64 // unix seconds of the last failure notice
}

var _ plugin.Emitter = (*runner)(nil)

func (r *runner) NewRecord() *keys.Record {
	types := make([]keys.Type, len(r.src.Out))
	for i, s := range r.src.Out {
		types[i] = s.Type
	}
	return keys.NewRecord(types)
}

func (r *runner) Emit(rec *keys.Record) {
	r.src.stats.Received.Add(1)
	r.mu.Lock()
	for _, st := range r.src.Stacks {
		st.walk(rec, r)
	}
	r.mu.Unlock()
	rec.Reset()
}

func (r *runner) Flush() {
	r.mu.Lock()
	r.flushLocked()
	r.mu.Unlock()
}

func (r *runner) flushLocked() {
	r.src.downstream(func(in *Node) {
		if f, ok := in.Inst.(plugin.Flusher); ok {
			if err := f.Flush(); err != nil {
				r.failNotice(in, err)
			}
		}
	})
}

// downstream calls fn for every filter and sink of every stack the source
// feeds, in stack order.
func (s *Source) downstream(fn func(*Node)) {
	for _, st := range s.Stacks {
		for _, in := range st.Instances[1:] {
			fn(in)
		}
	}
}

func (r *runner) Lost(n uint64) { r.src.stats.Lost.Add(n) }

// LostCount returns the source's loss count, for the source's notices.
func (r *runner) LostCount() uint64 { return r.src.stats.Lost.Load() }

// failNotice logs a failure at most once per second per source.
func (r *runner) failNotice(in *Node, err error) {
	now := time.Now().Unix()
	if last := r.lastFail.Load(); now == last || !r.lastFail.CompareAndSwap(last, now) {
		return
	}
	msg := "error during propagate_results"
	if err != nil {
		msg += ": " + err.Error()
	}
	r.log.Log(context.Background(), slog.LevelError, msg, "instance", in.ID, "plugin", in.Desc.Name,
		"failed", in.stats.Failed.Load())
}

// walk runs one event through the stack: copy the source's values, call
// each instance in order, reset.
func (st *Stack) walk(src *keys.Record, r *runner) {
	rec := st.rec
	rec.CopyFrom(src)
	for _, in := range st.Instances[1:] {
		in.stats.Received.Add(1)
		switch in.interp.Interp(rec) {
		case plugin.Continue:
			continue
		case plugin.Stop:
			in.stats.Stopped.Add(1)
		default:
			in.stats.Failed.Add(1)
			r.failNotice(in, nil)
		}
		break
	}
	rec.Reset()
}

// order returns every distinct instance, of the kinds given, kind by kind
// in that order, and within a kind in stack order.
func (g *Graph) order(kinds ...plugin.Kind) []*Node {
	var out []*Node
	seen := map[*Node]bool{}
	for _, kind := range kinds {
		for _, st := range g.Stacks {
			for _, in := range st.Instances {
				if in.Desc.Kind == kind && !seen[in] {
					seen[in] = true
					out = append(out, in)
				}
			}
		}
	}
	return out
}

// Start starts sources first, then filters, then sinks, so that a source
// that cannot start (a group already bound, no permission) fails before
// any sink has created a file. No event flows before Run: a source's Start
// only opens its sockets (the plugin.SourceInstance contract), and what
// the kernel sends meanwhile waits in their buffers. If one fails, what
// was started is stopped again in reverse order and the error returned.
func (g *Graph) Start(ctx context.Context) error {
	for _, in := range g.order(plugin.Source, plugin.Filter, plugin.Sink) {
		if err := in.Inst.Start(ctx); err != nil {
			err = fmt.Errorf("error starting `%s' (%s): %w", in.ID, in.Desc.Name, err)
			g.stopStarted(ctx)
			return err
		}
		g.started = append(g.started, in)
	}
	return nil
}

// stopStarted stops the started instances, last started first.
func (g *Graph) stopStarted(ctx context.Context) {
	for i := len(g.started) - 1; i >= 0; i-- {
		g.stopNode(ctx, g.started[i])
	}
	g.started = nil
}

func (g *Graph) stopNode(ctx context.Context, in *Node) {
	if err := in.Inst.Stop(ctx); err != nil {
		g.log.Error("error stopping instance", "instance", in.ID, "plugin", in.Desc.Name, "err", err)
	}
}

// Run runs every source in its own goroutine until ctx is cancelled, and
// flushes buffering sinks once a second so that nothing waits in memory
// for long when traffic is low. It returns the first source error, after
// cancelling the others.
func (g *Graph) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	g.runMu.Lock()
	if g.stopped {
		g.runMu.Unlock()
		return nil
	}
	g.cancelRun = cancel
	g.running.Add(1)
	g.runMu.Unlock()
	defer g.running.Done()
	var wg sync.WaitGroup
	for _, src := range g.Sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			si := src.Inst.(plugin.SourceInstance)
			if err := si.Run(ctx, src.run); err != nil && ctx.Err() == nil {
				cancel(fmt.Errorf("source %s (%s): %w", src.ID, src.Desc.Name, err))
			}
		}()
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for {
		select {
		case <-tick.C:
			for _, src := range g.Sources {
				src.run.Flush()
			}
		case <-done:
			return runError(ctx)
		case <-ctx.Done():
			// Sources return once Stop closes their sockets.
			<-done
			return runError(ctx)
		}
	}
}

// runError is Run's result: the first source error, or nil when Run was
// only cancelled.
func runError(ctx context.Context) error {
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// Stop stops sources first and waits for Run to return (a source may still
// be walking the rest of a receive batch after its socket is closed, and
// Run's ticker flushes sinks), flushes every buffering sink, then stops
// filters and sinks.
func (g *Graph) Stop(ctx context.Context) {
	g.runMu.Lock()
	if g.stopped {
		g.runMu.Unlock()
		return
	}
	g.stopped = true
	cancelRun := g.cancelRun
	g.runMu.Unlock()
	var rest []*Node
	for _, in := range g.started {
		if in.Desc.Kind != plugin.Source {
			rest = append(rest, in)
			continue
		}
		g.stopNode(ctx, in)
	}
	if cancelRun != nil {
		cancelRun(nil)
	}
	g.waitRun(ctx)
	for _, src := range g.Sources {
		if src.run != nil {
			src.run.Flush()
		}
	}
	// Downstream last: filters, then sinks.
	for _, in := range rest {
		g.stopNode(ctx, in)
	}
	g.started = nil
}

// stopDeadline bounds how long Stop waits for the sources to return.
const stopDeadline = 10 * time.Second

// waitRun waits for Run to return, at most stopDeadline (or until ctx is
// done); a source still running then is named, and shutdown goes on.
func (g *Graph) waitRun(ctx context.Context) {
	done := make(chan struct{})
	go func() { g.running.Wait(); close(done) }()
	t := time.NewTimer(stopDeadline)
	defer t.Stop()
	select {
	case <-done:
		return
	case <-t.C:
	case <-ctx.Done():
	}
	var names []string
	for _, src := range g.Sources {
		names = append(names, src.ID+" ("+src.Desc.Name+")")
	}
	g.log.Error("sources did not stop in time; stopping the sinks anyway", "sources", strings.Join(names, ", "),
		"waited", stopDeadline.String())
}

// Reopen asks every Reopener (file outputs) to reopen its file, between
// events. It returns the errors joined.
func (g *Graph) Reopen() error {
	var errs []error
	for _, src := range g.Sources {
		src.run.mu.Lock()
		src.downstream(func(in *Node) {
			if ro, ok := in.Inst.(plugin.Reopener); ok {
				if err := ro.Reopen(); err != nil {
					errs = append(errs, fmt.Errorf("%s (%s): %w", in.ID, in.Desc.Name, err))
				}
			}
		})
		src.run.mu.Unlock()
	}
	return errors.Join(errs...)
}

// Signal delivers SIGUSR1/SIGUSR2/SIGALRM to every instance that wants it:
// sources directly (they act through their Emitter), filters and sinks
// between events.
func (g *Graph) Signal(sig os.Signal) {
	for _, src := range g.Sources {
		if s, ok := src.Inst.(plugin.Signaler); ok {
			s.Signal(sig)
		}
		src.run.mu.Lock()
		src.downstream(func(in *Node) {
			if s, ok := in.Inst.(plugin.Signaler); ok {
				s.Signal(sig)
			}
		})
		src.run.mu.Unlock()
	}
}

// Instances returns every distinct instance (sinks, filters, sources).
func (g *Graph) Instances() []*Node { return g.order(plugin.Sink, plugin.Filter, plugin.Source) }
