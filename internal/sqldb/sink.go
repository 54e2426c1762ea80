package sqldb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/logging"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/sinkq"
)

// SinkConfig is what a SQL plugin gives NewSink.
type SinkConfig struct {
	Name    string // the plugin's name, for log lines ("PGSQL")
	Options Options
	IDRule  IDColumn
	Driver  Driver

	// Tunables; zero means the default. Tests shrink them.
	ConnectTimeout time.Duration // one connection attempt (default: Options.ConnectTimeout s, else 10 s)
	WriteTimeout   time.Duration // one batch (default 60 s)
	Drain          time.Duration // Stop's drain of the queue (default 5 s)
	MaxBatch       int           // rows per write (default 4096)
}

// Sink is a SQL sink: a plugin's instance embeds it and gets Start, Stop,
// Interp, Reopen (SIGHUP reconnects), Dropped, Written and Explain.
type Sink struct {
	cfg      SinkConfig
	upstream []keys.Bound
	stack    string // the stack line, for column errors
	log      *slog.Logger

	layout *Layout // what Interp copies; fixed at Start
	buf    []byte  // Interp's encoding buffer

	q *sinkq.Queue
	w *sinkq.Writer

	first    Conn  // the connection Start made, handed to the writer
	firstPos []int // its layout position of each written column
	firstErr error // why Start could not connect
	disabled atomic.Bool
	down     atomic.Bool   // no connection yet since a failed one at Start
	lost     atomic.Uint64 // rows dropped while disabled (reconnect=0)
	refused  atomic.Uint64 // rows the database refused

	stopped bool

	noteMu  sync.Mutex
	refNote logging.Limiter // the "row refused" error
}

// NewSink returns the sink of a SQL plugin instance (nothing opened).
func NewSink(env *plugin.Env, cfg SinkConfig) *Sink {
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 10 * time.Second
		if cfg.Options.ConnectTimeout > 0 {
			cfg.ConnectTimeout = time.Duration(cfg.Options.ConnectTimeout) * time.Second
		}
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 60 * time.Second
	}
	if cfg.Drain <= 0 {
		cfg.Drain = 5 * time.Second
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 4096
	}
	return &Sink{cfg: cfg, upstream: env.Upstream, stack: env.Pos, log: env.Logger()}
}

// connect opens a connection and binds the table's columns against ks.
func (s *Sink) connect(ctx context.Context, ks []keys.Bound) (Conn, *Binding, error) {
	return s.connectWith(ctx, s.cfg.Driver.Dial, ks)
}

func (s *Sink) connectWith(ctx context.Context, dial func(context.Context) (Conn, error), ks []keys.Bound) (Conn, *Binding, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ConnectTimeout)
	defer cancel()
	c, err := dial(ctx)
	if err != nil {
		return nil, nil, err
	}
	cols, err := c.Columns(ctx)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	b, err := Bind(s.cfg.Options.Table, cols, ks, s.cfg.IDRule, s.stack)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	if err := c.Prepare(ctx, b.Written()); err != nil {
		c.Close()
		return nil, nil, err
	}
	return c, b, nil
}

// Start connects once. Connected, it binds the columns (a missing table
// or a column without a key is Start's error) and queues only their values; unreachable, it
// logs that and queues every upstream value until the writer connects.
// Under overflow=spool it always queues every upstream value, and refuses
// to start when the spool holds rows of other keys (see LayoutFile).
func (s *Sink) Start(ctx context.Context) error {
	qo := s.cfg.Options.Queue()
	spool := qo.Policy() == sinkq.SpoolPolicy
	c, b, err := s.connect(ctx, s.upstream)
	var nk *ErrNoKey
	var nt *ErrNoTable
	switch {
	case errors.As(err, &nk):
		return err
	case errors.As(err, &nt):
		nt.Where = s.cfg.Driver.Peer()
		return err
	case err != nil:
		s.firstErr = err
		s.down.Store(true)
		s.layout = FullLayout(s.upstream)
	case spool:
		s.first, s.firstPos = c, b.Indexes()
		s.layout = FullLayout(s.upstream)
	default:
		s.first = c
		s.layout = NewLayout(s.upstream, b.Indexes())
		s.firstPos = identity(len(s.layout.Keys))
	}
	q, err := qo.Open()
	if err == nil && q.Spool() != nil {
		if err = checkSpoolLayout(qo.SpoolDir, s.layout, q.Spool().Len()); err != nil {
			_, _ = q.Spool().Close(nil)
		}
	}
	if err != nil {
		if s.first != nil {
			s.first.Close()
			s.first = nil
		}
		return fmt.Errorf("%s: %w", s.cfg.Name, err)
	}
	if s.firstErr != nil {
		s.log.Error(s.cfg.Name+": database unreachable at start; rows wait in the queue until it is back",
			"peer", s.cfg.Driver.Peer(), "err", s.firstErr)
	}
	s.q = q
	backoff := time.Duration(s.cfg.Options.Reconnect) * time.Second
	if backoff <= 0 {
		backoff = time.Second
	}
	s.w = sinkq.NewWriter(s.q, sinkq.WriterConfig{
		Dial:       s.dial,
		BackoffMin: backoff,
		BackoffMax: backoff, // ulogd2's fixed interval
		Drain:      s.cfg.Drain,
		MaxBatch:   s.cfg.MaxBatch,
		Log:        s.log,
		Peer:       s.cfg.Driver.Peer(),
		Texts: sinkq.Texts{
			Full:      s.cfg.Name + ": queue full (queue_bytes or queue_records), dropping rows",
			SendError: s.cfg.Name + ": write failed, reconnecting",
			Redial:    s.cfg.Name + ": no connection to database, attempting to reconnect",
			Connected: s.cfg.Name + ": connected to database",
			DropStop:  s.cfg.Name + ": rows dropped (queue full, refused by the database, or left at shutdown)",
		},
	})
	return s.w.Start(ctx)
}

// dial is the writer's Dial: the connection Start made (or, when the
// database was down, a peer that fails at once so that the writer dials
// again after its backoff), then new connections bound against the keys
// the rows hold.
func (s *Sink) dial(ctx context.Context) (sinkq.Peer, error) {
	if s.first != nil || s.firstErr != nil {
		c, err := s.first, s.firstErr
		s.first, s.firstErr = nil, nil
		if c == nil {
			if s.cfg.Options.Reconnect == 0 {
				s.disable(err) // the first failure was Start's
			}
			return &downPeer{err: err}, nil
		}
		return s.newPeer(c, s.firstPos), nil
	}
	if s.disabled.Load() {
		return nil, errDisabled
	}
	c, b, err := s.connect(ctx, s.layout.Keys)
	if err != nil {
		return nil, err
	}
	s.down.Store(false)
	return s.newPeer(c, b.Indexes()), nil
}

var errDisabled = errors.New("reconnect=0: plugin disabled after a failure")

// disable gives up for good (reconnect=0) after err: from now on every
// row is dropped and counted, and a walk waiting for room in the queue
// (overflow=block) goes on, its row dropped too.
func (s *Sink) disable(err error) {
	if !s.disabled.Swap(true) {
		s.log.Error(s.cfg.Name+": reconnect=0: permanently disabling plugin", "err", err)
		s.q.Close()
	}
}

func identity(n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	return p
}

// Flush wakes the writer for the rows of the receive batch that ended
// (see sinkq.Queue.Flush).
func (s *Sink) Flush() error {
	if s.w != nil {
		s.w.Flush()
	}
	return nil
}

// Interp copies the row's values into the queue; it waits only under
// overflow=block, for room in a full queue.
func (s *Sink) Interp(r *keys.Record) plugin.Verdict {
	if s.disabled.Load() {
		s.lost.Add(1)
		return plugin.Continue
	}
	s.buf = s.layout.Encode(s.buf[:0], r)
	s.w.Push(s.buf)
	return plugin.Continue
}

// Stop drains the queue for a bounded time; what is left is dropped,
// counted and reported.
func (s *Sink) Stop(ctx context.Context) error {
	if s.w == nil || s.stopped {
		return nil
	}
	s.stopped = true
	err := s.w.Stop(ctx)
	if n := s.refused.Load(); n > 0 {
		s.log.Error(s.cfg.Name+": rows refused by the database (dropped)", "refused", n)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", s.cfg.Name, err)
	}
	return nil
}

// Reopen reconnects (SIGHUP), as ulogd2's SQL plugins do.
func (s *Sink) Reopen() error {
	if s.w != nil {
		s.w.Reconnect()
	}
	return nil
}

// Dropped counts rows dropped: queue full (or the spool's cap reached),
// refused by the database, left at shutdown, or arriving while disabled
// (reconnect=0).
func (s *Sink) Dropped() uint64 {
	n := s.lost.Load()
	if s.q != nil {
		n += s.q.Dropped()
	}
	return n
}

// Written counts rows the database stored.
func (s *Sink) Written() uint64 {
	if s.q == nil {
		return 0
	}
	return s.q.Written()
}

// Refused counts rows the database refused for their values (part of
// Dropped).
func (s *Sink) Refused() uint64 { return s.refused.Load() }

// Stats returns the queue's counters (zero before Start).
func (s *Sink) Stats() sinkq.Stats {
	if s.q == nil {
		return sinkq.Stats{}
	}
	return s.q.Stats()
}

// Metrics reports the queue, the spool and the reconnections
// (plugin.Metricer).
func (s *Sink) Metrics() []plugin.Metric {
	return s.w.Metrics()
}

// Check reports the database down while no connection is open
// (plugin.Checker).
func (s *Sink) Check() error {
	if s.w != nil && s.down.Load() {
		return fmt.Errorf("not connected to %s", s.cfg.Driver.Peer())
	}
	return s.w.Check()
}

// Explain connects (bounded by the connect timeout), reads the table's
// columns and returns one line per column with the key bound to it, for
// --explain.
func (s *Sink) Explain(ctx context.Context) []string {
	dial := s.cfg.Driver.Dial
	if ro, ok := s.cfg.Driver.(ReadOnlyDriver); ok {
		dial = ro.DialReadOnly
	}
	c, b, err := s.connectWith(ctx, dial, s.upstream)
	if err != nil {
		return []string{fmt.Sprintf("columns of `%s': not known: %v", s.cfg.Options.Table, err)}
	}
	c.Close()
	return append([]string{fmt.Sprintf("columns of `%s' (%s):", s.cfg.Options.Table, s.cfg.Driver.Peer())},
		b.Explain(s.upstream)...)
}

// note reports whether a rate-limited line may be logged now.
func (s *Sink) note() bool {
	s.noteMu.Lock()
	defer s.noteMu.Unlock()
	return s.refNote.Allow(time.Now())
}

// peer is one connection as the writer sees it.
type peer struct {
	s      *Sink
	c      Conn
	pos    []int // layout position of each written column
	rows   []Row
	tmp    Row
	ctx    context.Context
	cancel context.CancelFunc
}

func (s *Sink) newPeer(c Conn, pos []int) *peer {
	ctx, cancel := context.WithCancel(context.Background())
	return &peer{s: s, c: c, pos: pos, ctx: ctx, cancel: cancel}
}

// Write decodes the batch into rows of the columns and writes them.
func (p *peer) Write(b *sinkq.Batch) (sent, discarded int, err error) {
	n := b.Len()
	for len(p.rows) < n {
		p.rows = append(p.rows, Row{})
	}
	rows := p.rows[:n]
	for i := range n {
		if err := p.s.layout.Decode(b.Record(i), &p.tmp); err != nil {
			// Cannot happen; written rows stay exact anyway.
			if i == 0 {
				p.s.log.Error(p.s.cfg.Name+": dropping a row", "err", err)
				return 0, 1, nil
			}
			rows = rows[:i]
			break
		}
		vals := rows[i].Vals[:0]
		for _, j := range p.pos {
			vals = append(vals, p.tmp.Vals[j])
		}
		rows[i].Vals = vals
		// The values alias the queue's bytes, which stay put until
		// Commit; p.tmp is reused, so nothing else is kept.
	}
	ctx, cancel := context.WithTimeout(p.ctx, p.s.cfg.WriteTimeout)
	stored, err := p.c.Write(ctx, rows)
	cancel()
	if IsRowError(err) {
		p.s.refused.Add(1)
		if p.s.note() {
			p.s.log.Error(p.s.cfg.Name+": row refused by the database, skipped", "err", err, "refused", p.s.refused.Load())
		}
		return stored, 1, nil
	}
	if err != nil && p.s.cfg.Options.Reconnect == 0 {
		p.s.disable(err)
	}
	return stored, 0, err
}

func (p *peer) Close() int {
	p.cancel()
	p.c.Close()
	return 0
}

func (p *peer) Interrupt()            { p.cancel() }
func (p *peer) Gone() <-chan struct{} { return nil }

// downPeer stands for the connection Start could not make: its first
// write fails, so that the writer dials again after its backoff.
type downPeer struct{ err error }

func (d *downPeer) Write(*sinkq.Batch) (int, int, error) { return 0, 0, d.err }
func (d *downPeer) Close() int                           { return 0 }
func (d *downPeer) Interrupt()                           {}
func (d *downPeer) Gone() <-chan struct{}                { return nil }
