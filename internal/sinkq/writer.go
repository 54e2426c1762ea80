package sinkq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ulogd-go/ulogd/internal/logging"
)

// Peer is one connection of a sink to where its records go (a socket, a
// database connection), opened by WriterConfig.Dial and used only by the
// Writer's goroutine (Interrupt and Gone excepted).
type Peer interface {
	// Write sends the records of b, in order. It returns how many
	// records, from the first, the peer took (sent) and how many after
	// those it discarded because they can never be sent (a datagram too
	// large); an error closes the peer, and the records not taken or
	// discarded stay queued for the next one, whole.
	Write(b *Batch) (sent, discarded int, err error)
	// Close closes the connection and returns how many of the records
	// it took it knows did not arrive (data the kernel still held unsent
	// when the connection died): they are counted as dropped.
	Close() (lost int)
	// Interrupt makes a Write blocked in the kernel return (another
	// goroutine calls it: SIGHUP, Stop's deadline).
	Interrupt()
	// Gone is closed when the peer went away on its own (a stream socket
	// closed by the other side); nil when that cannot be known.
	Gone() <-chan struct{}
}

// Texts are the log messages of one sink's writer.
type Texts struct {
	Full      string // a record dropped because the queue was full
	SendError string // prefix of a failed write's error: "SendError: err"
	Redial    string // a failed connection attempt
	Connected string // logged at NOTICE once a connection is made
	DropStop  string // at Stop: the count of every record dropped
}

// WriterConfig configures a Writer.
type WriterConfig struct {
	// Dial opens a new Peer; ctx is cancelled when Stop gives up.
	Dial func(ctx context.Context) (Peer, error)
	// BackoffMin and BackoffMax bound the wait between connection
	// attempts; the first attempt after a loss is immediate, unless the
	// connection died younger than BackoffMin (a flapping peer). Zero
	// means 1 s and 30 s.
	BackoffMin, BackoffMax time.Duration
	// Drain bounds how long Stop waits for the queue to empty (zero: 2 s).
	Drain time.Duration
	// MaxBatch bounds the records of one Peer.Write (zero: 1024).
	MaxBatch int
	// StartAnyway makes Start succeed when the first connection fails:
	// the failure is logged and the writer keeps dialling (a spool keeps
	// the records meanwhile).
	StartAnyway bool

	Log   *slog.Logger
	Peer  string // names the peer in log lines ("tcp:127.0.0.1:5140")
	Texts Texts
}

// Writer is the goroutine that empties a Queue into a Peer.
type Writer struct {
	q   *Queue
	cfg WriterConfig

	hup      chan struct{} // reconnect (SIGHUP)
	stopping chan struct{} // Stop: drain, then exit
	abort    chan struct{} // Stop's deadline passed: exit now
	done     chan struct{} // the goroutine returned
	ctx      context.Context
	cancel   context.CancelFunc // cancels a Dial in progress at the deadline

	peerMu sync.Mutex
	peer   Peer // the current connection, for Interrupt

	noteMu   sync.Mutex
	fullNote logging.Limiter // the "queue full" notice
	lastErr  error           // the last write or dial error, for the drop notice
	connects uint64
	started  bool
}

// NewWriter returns a Writer for q, not yet started.
func NewWriter(q *Queue, cfg WriterConfig) *Writer {
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = time.Second
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = 30 * time.Second
	}
	if cfg.Drain <= 0 {
		cfg.Drain = 2 * time.Second
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 1024
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Writer{q: q, cfg: cfg, hup: make(chan struct{}, 1), stopping: make(chan struct{}),
		abort: make(chan struct{}), done: make(chan struct{}), ctx: ctx, cancel: cancel}
}

// Start dials the first peer (a failure is Start's error, nothing is
// started) and starts the goroutine.
func (w *Writer) Start(ctx context.Context) error {
	p, err := w.cfg.Dial(ctx)
	if err != nil {
		if !w.cfg.StartAnyway {
			return err
		}
		w.setErr(err)
		w.cfg.Log.Error(w.cfg.Texts.Redial, "peer", w.cfg.Peer, "err", err, "queued_records", w.q.Depth())
		p = nil
	}
	w.peerMu.Lock()
	w.peer = p
	if p != nil {
		w.connects++
	}
	w.started = true
	w.peerMu.Unlock()
	go w.run(p)
	return nil
}

// Connects returns how many connections were made (Start's included).
func (w *Writer) Connects() uint64 {
	w.peerMu.Lock()
	defer w.peerMu.Unlock()
	return w.connects
}

// Connected reports whether a peer is open.
func (w *Writer) Connected() bool {
	w.peerMu.Lock()
	defer w.peerMu.Unlock()
	return w.peer != nil
}

func (w *Writer) setPeer(p Peer) {
	w.peerMu.Lock()
	w.peer = p
	w.peerMu.Unlock()
}

func (w *Writer) interrupt() {
	w.peerMu.Lock()
	if w.peer != nil {
		w.peer.Interrupt()
	}
	w.peerMu.Unlock()
}

// Reconnect asks the writer to close the connection and open a new one
// (SIGHUP). It does not wait.
func (w *Writer) Reconnect() {
	signal(w.hup)
	w.interrupt()
}

// Flush wakes the writer for what the walk queued (see Queue.Flush); a
// sink calls it from its Flush.
func (w *Writer) Flush() { w.q.Flush() }

// Push queues rec (see Queue.Push) and logs a drop, at most every
// logging.LimitEvery (10 s), with the last error of the peer.
func (w *Writer) Push(rec []byte) bool {
	if w.q.Push(rec) {
		return true
	}
	w.noteMu.Lock()
	if w.fullNote.Allow(time.Now()) {
		last := w.lastErr
		w.noteMu.Unlock()
		if sp := w.q.spool; sp != nil && sp.Err() != nil {
			last = sp.Err() // the spool refused it: a full disk
		}
		attrs := []any{"dropped", w.q.Dropped(), "queue_records", w.q.cfg.MaxRecords,
			"queue_bytes", w.q.cfg.MaxBytes, "peer", w.cfg.Peer}
		if last != nil {
			attrs = append(attrs, "err", last.Error())
		}
		w.cfg.Log.Error(w.cfg.Texts.Full, attrs...)
		return false
	}
	w.noteMu.Unlock()
	return false
}

func (w *Writer) setErr(err error) {
	w.noteMu.Lock()
	w.lastErr = err
	w.noteMu.Unlock()
}

// run sends the queued records until Stop. It owns the connection.
func (w *Writer) run(p Peer) {
	defer close(w.done)
	var (
		opened   = time.Now()
		delay    time.Duration   // wait before the next connection attempt
		errNote  logging.Limiter // send and dial errors
		batch    Batch
		stopping bool
	)
	note := func() bool { return errNote.Allow(time.Now()) }
	if p == nil {
		delay = w.cfg.BackoffMin // Start's attempt failed (StartAnyway)
	}
	closePeer := func(why error) {
		if p == nil {
			return
		}
		lost := p.Close()
		w.q.Lost(lost)
		w.setPeer(nil) // (after the count: Connected() tells it is done)
		if time.Since(opened) < w.cfg.BackoffMin {
			delay = min(max(2*delay, w.cfg.BackoffMin), w.cfg.BackoffMax)
		} else {
			delay = 0
		}
		p = nil
		select { // a SIGHUP that asked for this is served
		case <-w.hup:
		default:
		}
		if why != nil {
			w.setErr(why)
			if note() {
				attrs := []any{"peer", w.cfg.Peer, "queued_records", w.q.Depth()}
				if lost > 0 {
					attrs = append(attrs, "lost_unsent", lost)
				}
				w.cfg.Log.Error(w.cfg.Texts.SendError+": "+why.Error(), attrs...)
			}
		}
	}
	defer func() { closePeer(nil) }()
	for {
		select {
		case <-w.abort:
			return
		default:
		}
		if !stopping {
			select {
			case <-w.stopping:
				stopping = true
			default:
			}
		}
		if p != nil {
			select {
			case <-p.Gone():
				closePeer(errPeerClosed)
				continue
			case <-w.hup:
				closePeer(nil)
				continue
			default:
			}
		}
		spoolLeft := false
		if p != nil && w.q.spool != nil {
			spoolLeft = w.q.Refill()
		}
		empty := w.q.Depth() == 0 && !spoolLeft
		if stopping && empty {
			return
		}
		if p == nil {
			if stopping && delay > 0 {
				return // no time left to wait for the peer
			}
			if delay > 0 {
				t := time.NewTimer(delay)
				select {
				case <-t.C:
				case <-w.stopping:
					t.Stop()
					stopping = true
					continue
				case <-w.abort:
					t.Stop()
					return
				}
			}
			np, err := w.cfg.Dial(w.ctx)
			if err != nil {
				w.setErr(err)
				if note() {
					w.cfg.Log.Error(w.cfg.Texts.Redial, "peer", w.cfg.Peer, "err", err,
						"queued_records", w.q.Depth())
				}
				delay = min(max(2*delay, w.cfg.BackoffMin), w.cfg.BackoffMax)
				if stopping {
					return
				}
				continue
			}
			p, opened = np, time.Now()
			w.peerMu.Lock()
			w.peer = p
			w.connects++
			w.peerMu.Unlock()
			w.cfg.Log.Log(context.Background(), logging.LevelNotice, w.cfg.Texts.Connected, "peer", w.cfg.Peer)
			continue
		}
		if empty {
			select {
			case <-w.q.wake:
			case <-p.Gone():
				closePeer(errPeerClosed)
			case <-w.hup:
				closePeer(nil)
			case <-w.stopping:
				stopping = true
			case <-w.abort:
				return
			}
			continue
		}
		w.q.Peek(&batch, w.cfg.MaxBatch)
		sent, discarded, err := p.Write(&batch)
		w.q.Commit(sent)
		w.q.Discard(discarded)
		if err != nil {
			closePeer(w.sendError(err))
		}
	}
}

// sendError returns err, or nil when the write was interrupted on purpose
// (SIGHUP, or Stop's deadline): then there is nothing to report.
func (w *Writer) sendError(err error) error {
	select {
	case <-w.hup:
		return nil
	case <-w.abort:
		return nil
	default:
		return err
	}
}

type peerClosed struct{}

func (peerClosed) Error() string { return "connection closed by peer" }

var errPeerClosed error = peerClosed{}

// Stop lets the writer send what is queued for up to Drain (or until ctx
// is done), then closes the connection and the queue. What was left is
// counted as dropped and returned as an error; every drop of the queue's
// life is logged once more, with its total. Stop before Start, or twice,
// does nothing.
func (w *Writer) Stop(ctx context.Context) error {
	select {
	case <-w.stopping:
		return nil
	default:
	}
	close(w.stopping)
	w.peerMu.Lock()
	started := w.started
	w.peerMu.Unlock()
	if started {
		t := time.NewTimer(w.cfg.Drain)
		select {
		case <-w.done:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		close(w.abort)
		w.cancel()
		w.interrupt()
		<-w.done
	}
	w.cancel()
	var err error
	if w.q.spool != nil {
		// What is still queued goes to disk, in front of the spool, and
		// is sent after the next start.
		if serr := w.q.closeSpool(); serr != nil {
			err = serr
		}
		if n := w.q.Spooled(); n > 0 {
			w.cfg.Log.Log(context.Background(), logging.LevelNotice, "records spooled for the next start",
				"spooled", n, "dir", w.q.spool.cfg.Dir, "peer", w.cfg.Peer)
		}
	}
	w.q.Close()
	if n := w.q.Depth(); n > 0 {
		w.q.Discard(n)
		err = errors.Join(err, fmt.Errorf("%d records not sent to %s at shutdown", n, w.cfg.Peer))
		w.noteMu.Lock()
		if w.lastErr != nil {
			err = fmt.Errorf("%w (last error: %v)", err, w.lastErr)
		}
		w.noteMu.Unlock()
	}
	if d := w.q.Dropped(); d > 0 {
		w.cfg.Log.Error(w.cfg.Texts.DropStop, "dropped", d, "peer", w.cfg.Peer)
	}
	return err
}
