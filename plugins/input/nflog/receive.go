package nflog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/logging"
	"github.com/ulogd-go/ulogd/internal/nl"
	"github.com/ulogd-go/ulogd/internal/nl/nflog"
	"github.com/ulogd-go/ulogd/internal/plugin"
)

// receive is the packet loop: it never stops on its own. Overruns,
// truncated datagrams and decode errors are counted and reported; only
// Stop (or ctx) ends it.
func (in *instance) receive(c *nl.Conn, e plugin.Emitter) {
	rec := e.NewRecord()
	b := in.rx.batch
	// Group commit: the sinks write when the socket has been emptied,
	// before Receive sleeps or waits, not after every batch it returns.
	c.SetIdle(e.Flush)
	if n := in.rx.startLost; n != 0 {
		in.rx.buf.Count(e, n)
		in.log.Log(context.Background(), logging.LevelNotice, "NFLOG packets logged while the group was being configured were discarded", "lost", n)
	}
	for {
		n, err := c.Receive(b)
		if k, pid := b.Foreign(); k != 0 {
			in.rx.errs.CountForeign(in.log, "NFLOG", k, pid)
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
			continue
		}
		// Read the drop counter once the queue has drained after an
		// overrun (exact count), and about once a second otherwise.
		if _, read := in.rx.buf.PollDrops(c, e, time.Now(), in.rx.congested && n < b.Cap()); read {
			in.rx.congested = false
		}
		for i := range n {
			in.datagram(rec, e, b.Datagram(i), b.Truncated(i))
		}
	}
}

// datagram handles every message of one datagram. A truncated datagram's
// complete messages are handled and the cut one is counted.
func (in *instance) datagram(rec *keys.Record, e plugin.Emitter, buf []byte, truncated bool) {
	if truncated {
		in.truncatedDatagram(e)
	}
	for len(buf) > 0 {
		m, rest, err := nl.NextMsg(buf)
		if err != nil {
			if !truncated {
				in.decodeError(e, err)
			}
			return
		}
		raw := buf[: len(buf)-len(rest) : len(buf)-len(rest)]
		if l := nl.HeaderLen + len(m.Payload); l <= len(raw) {
			raw = raw[:l:l]
		}
		buf = rest
		if m.Type != nflog.MsgTypePacket {
			// NLMSG_DONE ends a kernel batch; NLMSG_ERROR answers the
			// unbind sent at stop.
			continue
		}
		p := &in.rx.pkt
		if err := nflog.Decode(m, p); err != nil {
			in.decodeError(e, err)
			continue
		}
		in.rx.unknown += uint64(p.Unknown)
		if in.rx.buf.SeqCounts && p.HasSeq {
			in.checkSeq(e, p.Seq)
		}
		in.sl.fill(rec, p, raw, uint8(in.cfg.NumericLabel), in.now)
		e.Emit(rec)
	}
}

// checkSeq counts a gap in the per-instance sequence (seq_local) as lost
// packets. The kernel numbers the instance's packets from 0; a packet it
// could not queue on the socket (ENOBUFS) or that did not fit the
// datagram still used its number. A backward jump is not counted.
func (in *instance) checkSeq(e plugin.Emitter, seq uint32) {
	rx := &in.rx
	want := uint32(0)
	if rx.haveSeq {
		want = rx.lastSeq + 1
	}
	rx.lastSeq, rx.haveSeq = seq, true
	gap := seq - want
	if gap == 0 || gap >= 1<<31 {
		return
	}
	rx.buf.Count(e, uint64(gap))
	if rx.gapNote.Allow(time.Now()) {
		in.log.Log(context.Background(), logging.LevelNotice, "NFLOG sequence gap: packets were lost",
			"missing", gap, "lost", rx.buf.Lost.Load(), "seq", seq)
	}
}

func (in *instance) truncatedDatagram(e plugin.Emitter) {
	rx := &in.rx
	rx.truncated++
	if !rx.buf.SeqCounts {
		// At least the cut message is lost; with seq_local the gap
		// counts them exactly.
		rx.buf.Count(e, 1)
	}
	if rx.truncNote.Allow(time.Now()) {
		in.log.Warn(fmt.Sprintf("NFLOG datagram larger than bufsize=%d was truncated: packets lost; raise bufsize", in.cfg.BufSize),
			"truncated", rx.truncated, "lost", rx.buf.Lost.Load())
	}
}

// decodeError counts a message that cannot be decoded: its packet is lost.
// With sequence numbers the gap it leaves counts it instead, once the next
// packet arrives.
func (in *instance) decodeError(e plugin.Emitter, err error) {
	if !in.rx.buf.SeqCounts {
		in.rx.buf.Count(e, 1)
	}
	in.rx.errs.DecodeError(in.log, "NFLOG cannot decode a packet message (skipped)", err)
}

func (in *instance) otherError(err error) {
	in.rx.errs.OtherError(in.log, "NFLOG receive error", err, in.done)
}

// overrun handles ENOBUFS: the kernel could not queue packets. The buffer
// counts them from the socket's drop counter (or, with seq_local, the
// sequence gaps do), doubles up to netlink_socket_buffer_maxsize and logs
// a notice (rate-limited); the drop counter is read again once the queue
// has drained.
func (in *instance) overrun(c *nl.Conn, e plugin.Emitter) {
	in.rx.congested = true
	in.rx.buf.Overrun(c, e)
}
