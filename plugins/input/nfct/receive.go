package nfct

import (
	"context"
	"encoding/binary"
	"errors"
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

// receive is the event loop: it never stops on its own. Overruns and decode
// errors are counted and reported; only Stop (or ctx) ends it.
func (in *instance) receive(c *nl.Conn, e plugin.Emitter) {
	rec := e.NewRecord()
	b := in.rx.batch
	// Group commit: the sinks write when the socket has been emptied,
	// before Receive sleeps or waits, not after every batch it returns.
	c.SetIdle(e.Flush)
	for {
		n, err := c.Receive(b)
		if k, pid := b.Foreign(); k != 0 {
			in.rx.errs.CountForeign(in.log, "NFCT", k, pid)
		}
		if err != nil {
			switch {
			case in.stopped() || errors.Is(err, nl.ErrClosed):
				return
			case errors.Is(err, nl.ErrNoBuffers):
				in.overrun(c, e)
			default:
				in.otherError(err)
			}
			continue // Receive returns no datagram with an error
		}
		t := time.Now()
		in.rx.now = timeToTimeval(t) // one clock read for the whole batch
		if n, _ := in.rx.buf.PollDrops(c, e, t, false); n != 0 && in.rx.buf.Note.Allow(t) {
			in.log.Log(context.Background(), logging.LevelNotice, "NFCT socket dropped events",
				"lost", in.rx.buf.Lost.Load(), "reliable", in.cfg.Reliable != 0)
		}
		for i := 0; i < n; i++ {
			if b.Truncated(i) {
				// The messages before the cut are whole; the cut one is
				// counted here, once.
				in.decodeError(e, nl.ErrTruncated) // the cut message is lost
				in.walk(rec, e, b.Datagram(i), true)
				continue
			}
			in.datagram(rec, e, b.Datagram(i))
		}
	}
}

// datagram handles every netlink message of one datagram.
func (in *instance) datagram(rec *keys.Record, e plugin.Emitter, buf []byte) {
	in.walk(rec, e, buf, false)
}

// walk handles the messages of buf; a malformed tail is counted unless the
// datagram is known to be truncated (already counted).
func (in *instance) walk(rec *keys.Record, e plugin.Emitter, buf []byte, truncated bool) {
	for len(buf) > 0 {
		m, rest, err := nl.NextMsg(buf)
		if err != nil {
			if !truncated {
				in.decodeError(e, err)
			}
			return
		}
		raw := buf[:len(buf)-len(rest)]
		if len(raw) >= 4 {
			if l := int(binary.NativeEndian.Uint32(raw)); l <= len(raw) {
				raw = raw[:l]
			}
		}
		buf = rest
		switch m.Type {
		case nlmsgNoop, nlmsgDone, nlmsgError, nlmsgOverrun:
			continue
		}
		if m.Type>>8 != subsysCT {
			// Expectation events (event_mask 0x8/0x10/0x20 in ulogd)
			// are not logged.
			continue
		}
		if err := ctnl.Decode(m, &in.rx.ev); err != nil {
			in.decodeError(e, err)
			continue
		}
		in.event(rec, e, &in.rx.ev, raw)
	}
}

// event applies one decoded conntrack event: §7.3 (hash) or §7.4 (no hash).
func (in *instance) event(rec *keys.Record, e plugin.Emitter, ev *ctnl.Event, raw []byte) {
	sl := &in.sl
	// The time of reception: every message of a batch arrived with the
	// same recvmmsg call.
	t := in.rx.now
	if t.sec == 0 {
		t = now()
	}
	if in.table != nil {
		switch ev.Type {
		case ctnl.New, ctnl.Update:
			if ok, first := in.table.upsert(ev, t); !ok && first {
				in.tableFull()
			}
		case ctnl.Destroy:
			start, ok := in.table.take(ev)
			if !ok {
				// ulogd2 drops the kernel's start time here (Q20).
				start = startOf(ev)
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
		sl.fill(rec, ev, eventNew, raw)
		sl.setStart(rec, startOf(ev).or(t))
		e.Emit(rec)
	case ctnl.Destroy:
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

func (in *instance) tableFull() {
	in.log.Log(context.Background(), logging.LevelNotice, fmt.Sprintf("NFCT flow table is full (hash_max_entries=%d): new flows are not tracked until entries are freed; their DESTROY records carry the kernel's start time only", in.cfg.HashMaxEntries))
}

// decodeError counts a message that cannot be decoded (or the cut one of a
// truncated datagram): its event is lost, and counted so.
func (in *instance) decodeError(e plugin.Emitter, err error) {
	in.rx.buf.Count(e, 1)
	in.rx.errs.DecodeError(in.log, "NFCT cannot decode a conntrack message (skipped)", err)
}

func (in *instance) otherError(err error) {
	in.rx.errs.OtherError(in.log, "NFCT receive error", err, in.done)
}

// overrun handles ENOBUFS: the kernel dropped events. The buffer counts
// them (the socket's drop counter when readable, else one per overrun) and
// grows up to netlink_socket_buffer_maxsize; a resync of the flow table is
// scheduled.
func (in *instance) overrun(c *nl.Conn, e plugin.Emitter) {
	in.rx.buf.Overrun(c, e)
	if in.table != nil {
		select {
		case in.resync <- struct{}{}:
		default:
		}
	}
}
