package json

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/ulogd-go/ulogd/internal/logging"
)

// ring is the bounded queue between Interp and the writer goroutine: a
// circular byte buffer of whole records, each ending in '\n' (a formatted
// record never contains a raw newline, so newlines are the boundaries).
// One producer (the source's walk) and one consumer (the writer). The
// consumer reads the queued bytes without the lock: the producer only
// writes into the free part.
type ring struct {
	mu   sync.Mutex
	buf  []byte
	head int // first queued byte
	n    int // queued bytes
	wake chan struct{}
}

func newRing(size int) *ring {
	return &ring{buf: make([]byte, size), wake: make(chan struct{}, 1)}
}

// push queues p whole, or returns false when it does not fit.
func (q *ring) push(p []byte) bool {
	q.mu.Lock()
	if len(p) > len(q.buf)-q.n {
		q.mu.Unlock()
		return false
	}
	tail := q.head + q.n
	if tail >= len(q.buf) {
		tail -= len(q.buf)
	}
	if c := copy(q.buf[tail:], p); c < len(p) {
		copy(q.buf, p[c:])
	}
	q.n += len(p)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
}

// span returns the queued bytes from off bytes past the head up to the end
// of the queue or of the buffer, whichever comes first.
func (q *ring) span(off int) []byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	if off >= q.n {
		return nil
	}
	start := q.head + off
	if start >= len(q.buf) {
		start -= len(q.buf)
	}
	end := start + (q.n - off)
	if end > len(q.buf) {
		end = len(q.buf)
	}
	return q.buf[start:end]
}

// consume removes k bytes from the head.
func (q *ring) consume(k int) {
	q.mu.Lock()
	q.head += k
	if q.head >= len(q.buf) {
		q.head -= len(q.buf)
	}
	q.n -= k
	if q.n == 0 {
		q.head = 0 // keep spans long
	}
	q.mu.Unlock()
}

// queued returns the number of bytes waiting.
func (q *ring) queued() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

// records counts the queued records.
func (q *ring) records() int {
	n := 0
	for off := 0; ; {
		s := q.span(off)
		if len(s) == 0 {
			return n
		}
		n += bytes.Count(s, []byte{'\n'})
		off += len(s)
	}
}

// link is one connection. gone is closed when the peer closed a stream
// connection or it failed (detected by a reader goroutine, so that a dead
// peer is noticed before the next record is written into the void).
type link struct {
	c      net.Conn
	gone   chan struct{}
	opened time.Time
}

func (s *sink) dial(ctx context.Context) (*link, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.DialContext(ctx, s.network, s.addr)
	if err != nil {
		return nil, err
	}
	l := &link{c: c, gone: make(chan struct{}), opened: time.Now()}
	if s.mode == modeUDP {
		return l, nil // no peer to watch; l.gone never closes
	}
	go func() {
		// The peer sends nothing; a read returns when it closes the
		// connection or the connection fails (or we close it).
		var b [512]byte
		for {
			if _, err := c.Read(b[:]); err != nil {
				close(l.gone)
				return
			}
		}
	}()
	return l, nil
}

func (s *sink) startSocket(ctx context.Context) error {
	l, err := s.dial(ctx)
	if err != nil {
		return fmt.Errorf("can't connect to %s %s: %w", s.network, s.addr, err)
	}
	s.q = newRing(queueSize)
	s.hup = make(chan struct{}, 1)
	s.stopping = make(chan struct{})
	s.abort = make(chan struct{})
	s.setLink(l)
	s.connects.Add(1)
	s.wg.Add(1)
	go s.writer(l)
	return nil
}

func (s *sink) setLink(l *link) {
	s.linkMu.Lock()
	s.link = l
	s.linkMu.Unlock()
}

// interrupt makes a write blocked on the current connection return.
func (s *sink) interrupt() {
	s.linkMu.Lock()
	if s.link != nil {
		_ = s.link.c.SetWriteDeadline(time.Unix(1, 0))
	}
	s.linkMu.Unlock()
}

// reconnect asks the writer to close the connection and open a new one
// (SIGHUP). It does not wait.
func (s *sink) reconnect() {
	if s.hup == nil {
		return
	}
	select {
	case s.hup <- struct{}{}:
	default:
	}
	s.interrupt()
}

// drop counts a record that did not fit in the queue, with a notice at
// most every dropNoticeEvery seconds.
func (s *sink) drop() {
	n := s.dropped.Add(1)
	now := s.now().Unix()
	last := s.lastDrop.Load()
	if now-last < dropNoticeEvery || !s.lastDrop.CompareAndSwap(last, now) {
		return
	}
	s.log.Error("JSON: send queue full, dropping records", "dropped", n,
		"queue_bytes", queueSize, "peer", s.network+":"+s.addr)
}

// writer sends the queued records until Stop. It owns the connection.
func (s *sink) writer(l *link) {
	defer s.wg.Done()
	var (
		pending int           // bytes written on l past the head, not yet consumed
		delay   time.Duration // wait before the next connection attempt
		lastErr time.Time     // last "can't send" notice
		dgram   []byte        // UDP: a record that wraps around the ring
	)
	closeLink := func(why error) {
		if l == nil {
			return
		}
		_ = l.c.Close()
		s.setLink(nil)
		// A connection that died young means a flapping peer: back off.
		if time.Since(l.opened) < backoffMin {
			delay = min(max(2*delay, backoffMin), backoffMax)
		} else {
			delay = 0
		}
		l, pending = nil, 0
		select { // a SIGHUP that asked for this is served
		case <-s.hup:
		default:
		}
		if why != nil && time.Since(lastErr) >= 10*time.Second {
			lastErr = time.Now()
			s.log.Error("JSON: Failure sending message: "+why.Error(), "peer", s.network+":"+s.addr,
				"queued_records", s.q.records())
		}
	}
	defer func() { closeLink(nil) }()
	stopping := false
	for {
		select {
		case <-s.abort:
			return
		default:
		}
		if !stopping {
			select {
			case <-s.stopping:
				stopping = true
			default:
			}
		}
		if l != nil {
			select {
			case <-l.gone:
				closeLink(errors.New("connection closed by peer"))
				continue
			case <-s.hup:
				closeLink(nil)
				continue
			default:
			}
		}
		empty := s.q.queued() <= pending
		if stopping && empty {
			return
		}
		if l == nil {
			if stopping && delay > 0 {
				return // no time left to wait for the peer
			}
			if delay > 0 {
				t := time.NewTimer(delay)
				select {
				case <-t.C:
				case <-s.stopping:
					t.Stop()
					stopping = true
					continue
				case <-s.abort:
					t.Stop()
					return
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				select {
				case <-s.abort:
					cancel()
				case <-ctx.Done():
				}
			}()
			nl, err := s.dial(ctx)
			cancel()
			if err != nil {
				if time.Since(lastErr) >= 10*time.Second {
					lastErr = time.Now()
					s.log.Error("JSON: can't reconnect", "peer", s.network+":"+s.addr, "err", err,
						"queued_records", s.q.records())
				}
				delay = min(max(2*delay, backoffMin), backoffMax)
				if stopping {
					return
				}
				continue
			}
			l = nl
			s.setLink(l)
			s.connects.Add(1)
			s.log.Log(context.Background(), logging.LevelNotice, "JSON: connected", "peer", s.network+":"+s.addr)
			continue
		}
		if empty {
			select {
			case <-s.q.wake:
			case <-l.gone:
				closeLink(errors.New("connection closed by peer"))
			case <-s.hup:
				closeLink(nil)
			case <-s.stopping:
				stopping = true
			case <-s.abort:
				return
			}
			continue
		}
		if s.mode == modeUDP {
			rec, wrapped := s.nextRecord(dgram)
			if wrapped {
				dgram = rec[:0]
			}
			_, err := l.c.Write(rec)
			if err != nil && errors.Is(err, syscall.ECONNREFUSED) {
				// The error belongs to an earlier datagram (ICMP port
				// unreachable); this one was not sent: try again.
				_, err = l.c.Write(rec)
			}
			switch {
			case err == nil:
				s.q.consume(len(rec))
				s.sent.Add(1)
			case errors.Is(err, syscall.EMSGSIZE):
				s.q.consume(len(rec)) // can never be sent
				s.dropped.Add(1)
			default:
				closeLink(s.sendError(err))
			}
			continue
		}
		span := s.q.span(pending)
		n, err := l.c.Write(span)
		// Consume whole records only; a record cut by an error is sent
		// again, whole, on the next connection.
		if i := bytes.LastIndexByte(span[:n], '\n'); i >= 0 {
			s.q.consume(pending + i + 1)
			s.sent.Add(uint64(bytes.Count(span[:i+1], []byte{'\n'})))
			pending = n - (i + 1)
		} else {
			pending += n
		}
		if err != nil {
			closeLink(s.sendError(err))
		}
	}
}

// sendError returns err, or nil when the write was interrupted on purpose
// (SIGHUP, or Stop's deadline): then there is nothing to report.
func (s *sink) sendError(err error) error {
	select {
	case <-s.hup:
		return nil
	case <-s.abort:
		return nil
	default:
		return err
	}
}

// nextRecord returns the record at the head of the queue (with its
// newline). A record that wraps around the end of the ring is copied into
// buf (wrapped is then true).
func (s *sink) nextRecord(buf []byte) (rec []byte, wrapped bool) {
	first := s.q.span(0)
	if i := bytes.IndexByte(first, '\n'); i >= 0 {
		return first[:i+1], false
	}
	rec = append(buf[:0], first...)
	second := s.q.span(len(first))
	i := bytes.IndexByte(second, '\n')
	return append(rec, second[:i+1]...), true
}

// stopSocket lets the writer send what is queued for up to stopDrain (or
// ctx's deadline), then closes the connection.
func (s *sink) stopSocket(ctx context.Context) error {
	if s.stopping == nil {
		return nil
	}
	close(s.stopping)
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	t := time.NewTimer(stopDrain)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	case <-ctx.Done():
	}
	close(s.abort)
	s.interrupt()
	<-done
	var err error
	if n := s.q.records(); n > 0 {
		err = fmt.Errorf("JSON: %d records not sent to %s %s at shutdown", n, s.network, s.addr)
	}
	if d := s.dropped.Load(); d > 0 {
		s.log.Error("JSON: records dropped because the send queue was full", "dropped", d,
			"peer", s.network+":"+s.addr)
	}
	s.stopping = nil
	return err
}
