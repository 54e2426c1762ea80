// Package eventsock is the receive loop of a netlink event socket, the one
// the event sources (NFCT, NFLOG) share: it reads the socket in batches
// (nl.Conn.TryReceive), hands every netlink message to the source, flushes
// the source's sinks when the socket is drained and then lets the
// connection coalesce or wait (nl.Conn.Wait). Beside the loop it keeps the
// socket's receive buffer (sizing, overruns as ulogd2 handles them) and
// accounts for what the kernel could not deliver: the socket's drop
// counter, truncated datagrams, undecodable messages, datagrams a process
// sent. The source's emitter is the one owner of the loss count; the loop
// tells it every loss and reads the count back for its notices.
package eventsock

import (
	"context"
	"errors"
	"time"

	"github.com/ulogd-go/ulogd/internal/logging"
	"github.com/ulogd-go/ulogd/internal/nl"
)

// Handler is the source's side of the loop.
type Handler interface {
	// Message handles one netlink message of a received datagram; raw is
	// the whole message (header included), cut to its nlmsg_len, and like
	// m.Payload it aliases the receive batch. A non-nil error counts the
	// message as undecodable (and its event as lost).
	Message(m nl.Msg, raw []byte) error
}

// Overruns is implemented by a Handler that acts on overruns (ENOBUFS)
// beyond the counting: NFCT schedules a resync of its flow table.
type Overruns interface {
	Overrun()
}

// Loop is one event socket's receive loop. Set the exported fields, size
// the buffer (SetBuffer) while configuring the socket, call Ready once it
// is configured, then Run in the receive goroutine.
type Loop struct {
	Buffer // receive buffer and loss accounting; Buffer.Name names the source

	// DecodeMsg is the warning logged (rate-limited) for a message the
	// handler cannot decode.
	DecodeMsg string
	// TruncatedMsg is the warning logged (rate-limited) for a datagram
	// larger than its receive slot.
	TruncatedMsg string

	conn      *nl.Conn
	batch     *nl.Batch
	at        time.Time // when the current batch was received
	congested bool      // ENOBUFS seen, drop counter not read since the queue drained

	errs      Errors
	truncNote logging.Limiter
}

// SetBuffer sizes c's receive buffer (see Buffer.Set); call it before the
// socket is configured, so that no acknowledgement is dropped.
func (l *Loop) SetBuffer(ctx context.Context, c *nl.Conn, size int) { l.Set(ctx, c, size) }

// Ready makes c, configured, the loop's socket, read into b: it turns on
// read coalescing (nl.EventCoalesce) and takes the drop counter's baseline.
func (l *Loop) Ready(c *nl.Conn, b *nl.Batch) {
	l.conn, l.batch = c, b
	c.SetCoalesce(nl.EventCoalesce)
	l.Baseline(c)
}

// Errors returns the counts of the errors other than overruns.
func (l *Loop) Errors() Errors { return l.errs }

// Received is when the current batch was received: every message of a
// batch arrived with the same recvmmsg call.
func (l *Loop) Received() time.Time { return l.at }

// Sync brings the loss count up to date with the socket's drop counter
// (Buffer.Sync). Safe from any goroutine while the socket is open.
func (l *Loop) Sync(e Sink) {
	if l.conn != nil {
		l.Buffer.Sync(l.conn, e)
	}
}

// Run reads the socket until it is closed, or fails after done is closed.
// Overruns, truncated datagrams and decode errors are counted and
// reported; they never end the loop.
//
// Group commit: the sinks are flushed (e.Flush) when the socket is
// drained, before the connection sleeps (coalescing, up to
// nl.EventCoalesce, bounded by the receive buffer) or waits, not after
// every batch: one write per burst, however many reads it takes, and
// nothing left buffered while the loop waits.
func (l *Loop) Run(done <-chan struct{}, e Sink, h Handler) {
	c, b := l.conn, l.batch
	for {
		n, err := c.TryReceive(b)
		if k, pid := b.Foreign(); k != 0 {
			l.errs.CountForeign(l.Log, l.Name, k, pid)
		}
		if err == nl.ErrDrained {
			e.Flush()
			if err = c.Wait(); err == nil {
				continue
			}
		}
		if err != nil {
			switch {
			case closed(done) || errors.Is(err, nl.ErrClosed):
				return
			case errors.Is(err, nl.ErrNoBuffers):
				l.overrun(e, h)
			default:
				l.errs.OtherError(l.Log, l.Name+" receive error", err, done)
			}
			continue // no datagram comes with an error
		}
		l.at = time.Now() // one clock read for the whole batch
		// Read the drop counter once the queue has drained after an
		// overrun (exact count), and about once a second otherwise.
		counted, read := l.PollDrops(c, e, l.at, l.congested && n < b.Cap())
		if read {
			l.congested = false
		}
		if counted != 0 && l.Note.Allow(l.at) {
			l.Log.Log(context.Background(), logging.LevelNotice, l.Name+" socket dropped events", "lost", LostOf(e))
		}
		for i := range n {
			l.Datagram(e, h, b.Datagram(i), b.Truncated(i))
		}
	}
}

func closed(done <-chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// Datagram hands every message of buf to h, as Run does for every
// datagram it receives (tests and benchmarks feed captured datagrams
// through it). A truncated datagram's complete messages are handled and
// the cut one is counted once.
func (l *Loop) Datagram(e Sink, h Handler, buf []byte, truncated bool) {
	if truncated {
		l.truncatedDatagram(e)
	}
	for len(buf) > 0 {
		m, rest, err := nl.NextMsg(buf)
		if err != nil {
			if !truncated {
				l.DecodeError(e, err)
			}
			return
		}
		n := len(buf) - len(rest)
		raw := buf[:n:n]
		if k := nl.HeaderLen + len(m.Payload); k <= n {
			raw = raw[:k:k] // without the alignment padding
		}
		buf = rest
		if err := h.Message(m, raw); err != nil {
			l.DecodeError(e, err)
		}
	}
}

// DecodeError counts a message that cannot be decoded: its event is lost.
// With sequence numbers (SeqCounts) the gap it leaves counts it instead,
// once the next event arrives.
func (l *Loop) DecodeError(e Sink, err error) {
	if !l.SeqCounts {
		l.Count(e, 1)
	}
	l.errs.DecodeError(l.Log, l.DecodeMsg, err)
}

func (l *Loop) truncatedDatagram(e Sink) {
	l.errs.Truncated++
	if !l.SeqCounts {
		// At least the cut message is lost; with sequence numbers the
		// gap counts them exactly.
		l.Count(e, 1)
	}
	if l.truncNote.Allow(time.Now()) {
		l.Log.Warn(l.TruncatedMsg, "truncated", l.errs.Truncated, "lost", LostOf(e))
	}
}

// overrun handles ENOBUFS: the kernel could not queue events. The buffer
// counts them (the drop counter, read again once the queue has drained),
// grows up to MaxSize and logs ulogd's notice; then h acts on it.
func (l *Loop) overrun(e Sink, h Handler) {
	l.congested = true
	l.Overrun(l.conn, e)
	if o, ok := h.(Overruns); ok {
		o.Overrun()
	}
}
