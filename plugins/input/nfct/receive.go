package nfct

import (
	"context"
	"fmt"
	"time"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/logging"
	"github.com/ulogd-go/ulogd/internal/nl"
	"github.com/ulogd-go/ulogd/internal/nl/ctnl"
	"github.com/ulogd-go/ulogd/internal/plugin"
)

// Netlink message types handled before decoding.
const (
	nlmsgNoop    = 0x1 // NLMSG_NOOP
	nlmsgError   = 0x2 // NLMSG_ERROR
	nlmsgDone    = 0x3 // NLMSG_DONE
	nlmsgOverrun = 0x4 // NLMSG_OVERRUN
	subsysCT     = 1   // NFNL_SUBSYS_CTNETLINK (expectations, 2, are skipped)
)

// receiver is the receive loop's handler: it decodes the conntrack
// messages and applies them (one record per event, or the flow table).
type receiver struct {
	in  *instance
	rec *keys.Record
	e   plugin.Emitter
}

// receive is the event loop: it never stops on its own. Overruns and decode
// errors are counted and reported; only Stop (or ctx) ends it.
func (in *instance) receive(e plugin.Emitter) {
	in.rx.h = receiver{in: in, rec: e.NewRecord(), e: e}
	in.rx.loop.Run(in.done, e, &in.rx.h)
}

// Message handles one netlink message of the event socket.
func (r *receiver) Message(m nl.Msg, raw []byte) error {
	switch m.Type {
	case nlmsgNoop, nlmsgDone, nlmsgError, nlmsgOverrun:
		return nil
	}
	if m.Type>>8 != subsysCT {
		// Expectation events (event_mask 0x8/0x10/0x20 in ulogd) are
		// not logged.
		return nil
	}
	in := r.in
	if err := ctnl.Decode(m, &in.rx.ev); err != nil {
		return err
	}
	in.event(r.rec, r.e, &in.rx.ev, raw)
	return nil
}

// Overrun schedules a resync of the flow table: the kernel dropped events.
func (r *receiver) Overrun() {
	if r.in.table != nil {
		select {
		case r.in.resync <- struct{}{}:
		default:
		}
	}
}

// event applies one decoded conntrack event: to the flow table and, for
// DESTROY, as a record (hash_enable=1), or as a record of its own
// (hash_enable=0; UPDATE is not logged).
func (in *instance) event(rec *keys.Record, e plugin.Emitter, ev *ctnl.Event, raw []byte) {
	sl := &in.sl
	// The time of reception: every message of a batch arrived with the
	// same recvmmsg call.
	t := in.received()
	if in.table != nil {
		switch ev.Type {
		case ctnl.New, ctnl.Update:
			if ok, first := in.table.upsert(ev, t); !ok && first {
				in.tableFull()
			}
		case ctnl.Destroy:
			start, ok := in.table.take(ev)
			if !ok {
				// ulogd2 drops the kernel's start time here
				// (docs/compat.md N4).
				start = startOf(ev)
				if in.rx.missedNew && in.table.Untracked() == 0 {
					in.lostNew(e)
				}
			}
			sl.fill(rec, ev, eventDestroy, raw)
			sl.setStart(rec, start)
			sl.setEnd(rec, stopOf(ev).or(t))
			e.Emit(rec)
		}
		return
	}
	switch ev.Type {
	case ctnl.New:
		if in.rx.missedNew {
			in.rx.seen[ev.ID] = struct{}{}
		}
		sl.fill(rec, ev, eventNew, raw)
		sl.setStart(rec, startOf(ev).or(t))
		e.Emit(rec)
	case ctnl.Destroy:
		if in.rx.missedNew {
			if _, ok := in.rx.seen[ev.ID]; ok {
				delete(in.rx.seen, ev.ID)
			} else {
				in.lostNew(e)
			}
		}
		sl.fill(rec, ev, eventDestroy, raw)
		sl.setStart(rec, startOf(ev))
		sl.setEnd(rec, stopOf(ev).or(t))
		e.Emit(rec)
	default:
		in.rx.updates++
		if in.rx.updateNote.Allow(time.Now()) {
			in.log.Log(context.Background(), logging.LevelNotice, "unsupported message type",
				"detail", "UPDATE events are not logged with hash_enable=0", "count", in.rx.updates)
		}
	}
}

// lostNew counts the NEW event of a flow whose DESTROY came first
// (reliable=1): the kernel could not queue the NEW event and sent it again
// only merged into the DESTROY. That is what reliable mode really loses;
// the socket's drop counter counts DESTROY events too, which the kernel
// keeps and delivers again (net/netfilter/nf_conntrack_ecache.c).
func (in *instance) lostNew(e plugin.Emitter) {
	in.rx.loop.Count(e, 1)
}

func (in *instance) tableFull() {
	in.log.Log(context.Background(), logging.LevelNotice, fmt.Sprintf("NFCT flow table is full (hash_max_entries=%d): new flows are not tracked until entries are freed; their DESTROY records carry the kernel's start time only", in.cfg.HashMaxEntries))
}

// received is the time the current batch was received (the clock when
// there is none), converted once per batch.
func (in *instance) received() timeval {
	at := in.rx.loop.Received()
	if at.IsZero() {
		return now()
	}
	if !at.Equal(in.rx.at) {
		in.rx.at, in.rx.now = at, timeToTimeval(at)
	}
	return in.rx.now
}
