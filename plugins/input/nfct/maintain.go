package nfct

import (
	"context"
	"time"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/logging"
	"github.com/ulogd-go/ulogd/internal/nl"
	"github.com/ulogd-go/ulogd/internal/nl/ctnl"
	"github.com/ulogd-go/ulogd/internal/plugin"
)

// afUnspec dumps every address family.
const afUnspec = 0

// maintainer is the state of the maintenance goroutine: polling, resync
// after overruns and SIGUSR2 dumps. It emits with its own record.
type maintainer struct {
	in    *instance
	e     plugin.Emitter
	rec   *keys.Record
	refs  []flowRef
	probe ctnl.Event
	note  logging.Limiter
}

// maintain runs the timers and the SIGUSR2 requests until the instance
// stops. Dumps run on their own sockets, concurrently with the receive
// loop.
func (in *instance) maintain(ctx context.Context, e plugin.Emitter) {
	m := &maintainer{in: in, e: e, rec: e.NewRecord()}
	var poll <-chan time.Time
	if in.polling {
		t := time.NewTicker(time.Duration(in.cfg.PollInterval) * time.Second)
		defer t.Stop()
		poll = t.C
	}
	// The silent sweep: flows learned from a dump that no event confirmed
	// are checked with the kernel every netlink_resync_timeout seconds.
	var sweep <-chan time.Time
	if in.table != nil && !in.polling {
		t := time.NewTicker(max(time.Duration(in.cfg.ResyncTimeout)*time.Second, time.Second))
		defer t.Stop()
		sweep = t.C
	}
	var resync *time.Timer
	var resyncC <-chan time.Time
	defer func() {
		if resync != nil {
			resync.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-in.done:
			return
		case <-poll:
			m.poll()
		case <-sweep:
			if err := m.sweepSilent(); err != nil && !in.stopped() && m.note.Allow(time.Now()) {
				in.log.Warn("NFCT checking flows that predate the event subscription failed", "err", err)
			}
		case <-in.resync:
			if resyncC == nil {
				resync = time.NewTimer(time.Duration(in.cfg.ResyncTimeout) * time.Second)
				resyncC = resync.C
			}
		case <-resyncC:
			resyncC = nil
			if err := m.resync(); err != nil && !in.stopped() {
				retry := max(time.Duration(in.cfg.ResyncTimeout)*time.Second, time.Second)
				in.log.Warn("NFCT resync failed, trying again later", "err", err, "retry_in", retry)
				resync = time.NewTimer(retry)
				resyncC = resync.C
			}
		case <-in.usr2:
			if err := m.dumpAndZero(); err != nil && !in.stopped() {
				in.log.Error("Cannot dump and reset counters", "err", err)
			}
		}
	}
}

// initialDump fills the flow table with the kernel's current flows (hash
// event mode, at start).
func (in *instance) initialDump() error {
	c, err := in.openAux()
	if err != nil {
		return err
	}
	defer in.closeAux(c)
	t := now()
	return ctnl.Dump(c, afUnspec, false, func(ev *ctnl.Event) {
		in.learn(ev, t)
	})
}

// learn records a flow seen in a dump.
func (in *instance) learn(ev *ctnl.Event, t timeval) {
	if ok, first := in.table.learn(ev, t); !ok && first {
		in.tableFull()
	}
}

// sweepSilent emits a DESTROY for every silent flow (one that predates the
// event subscription, so the kernel will never report its end) that the
// kernel no longer has.
func (m *maintainer) sweepSilent() error {
	m.refs = m.in.table.snapshotSilent(m.refs[:0])
	if len(m.refs) == 0 {
		return nil
	}
	c, err := m.in.openAux()
	if err != nil {
		return err
	}
	defer m.in.closeAux(c)
	return m.purgeRefs(c)
}

// poll is one polling round: dump into the table, then purge.
func (m *maintainer) poll() {
	if err := m.sync(); err != nil && !m.in.stopped() {
		if m.note.Allow(time.Now()) {
			m.in.log.Warn("NFCT polling the conntrack table failed", "err", err)
		}
	}
}

// resync is run netlink_resync_timeout seconds after an overrun: the same
// as a polling round.
func (m *maintainer) resync() error {
	err := m.sync()
	if err == nil {
		m.in.log.Debug("NFCT flow table resynchronised", "flows", m.in.table.Len())
	}
	return err
}

// sync dumps the kernel table into the flow table (new flows are added,
// known ones refreshed; nothing is emitted), then emits and removes the
// entries the kernel no longer has.
func (m *maintainer) sync() error {
	c, err := m.in.openAux()
	if err != nil {
		return err
	}
	defer m.in.closeAux(c)
	t := now()
	if err := ctnl.Dump(c, afUnspec, false, func(ev *ctnl.Event) {
		m.in.learn(ev, t)
	}); err != nil {
		return err
	}
	return m.purge(c)
}

// purge asks the kernel about every table entry; an entry it no longer has
// is emitted as a DESTROY with the last known counters, the stored start
// and end = now (ulogd 2.0.9; 2.0.8 left flow.end unset: docs/compat.md N5).
func (m *maintainer) purge(c *nl.Conn) error {
	m.refs = m.in.table.snapshot(m.refs[:0])
	return m.purgeRefs(c)
}

// purgeRefs checks the entries in m.refs with the kernel and emits those it
// no longer has.
func (m *maintainer) purgeRefs(c *nl.Conn) error {
	in := m.in
	emitted := false
	defer func() {
		if emitted {
			m.e.Flush()
		}
	}()
	for i := range m.refs {
		if in.stopped() {
			return nl.ErrClosed
		}
		ref := &m.refs[i]
		ref.probe(&m.probe)
		ok, err := ctnl.Exists(c, &m.probe)
		if err != nil {
			return err
		}
		if ok {
			continue
		}
		f := in.table.remove(ref)
		if f == nil {
			continue // destroyed (and emitted) meanwhile
		}
		in.sl.fill(m.rec, &f.ev, eventDestroy, nil)
		in.sl.setStart(m.rec, f.start)
		in.sl.setEnd(m.rec, now())
		m.e.Emit(m.rec)
		in.table.put(f)
		emitted = true
	}
	return nil
}

// dumpAndZero is the SIGUSR2 action: dump every flow while zeroing
// its kernel counters, emit each as an UPDATE with the counters it had.
// It works without the flow table, and a shared instance emits once into
// every stack through the emitter (ulogd2 crashed in both cases: docs/compat.md N3).
func (m *maintainer) dumpAndZero() error {
	in := m.in
	c, err := in.openAux()
	if err != nil {
		return err
	}
	defer in.closeAux(c)
	defer m.e.Flush()
	t := now()
	return ctnl.Dump(c, afUnspec, true, func(ev *ctnl.Event) {
		start := startOf(ev)
		if in.table != nil {
			var ok, first bool
			if start, ok, first = in.table.learnStart(ev, t); !ok && first {
				in.tableFull()
			}
		}
		in.sl.fill(m.rec, ev, eventUpdate, nil)
		in.sl.setStart(m.rec, start)
		m.e.Emit(m.rec)
	})
}
