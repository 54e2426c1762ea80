package eventsock

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ulogd-go/ulogd/internal/logging"
)

// Buffer sizing and overruns.

// DefaultSize is the receive buffer requested when
// netlink_socket_buffer_size is 0.
const DefaultSize = 64 << 20

// dropsEvery is how often PollDrops reads the drop counter when not
// forced.
const dropsEvery = time.Second

// Socket is what a Buffer uses of the netlink socket (an *nl.Conn).
type Socket interface {
	// SetReadBuffer sets SO_RCVBUFFORCE (falling back to SO_RCVBUF) and
	// returns the size the kernel reports back.
	SetReadBuffer(bytes int) (effective int, err error)
	// Drops returns the socket's drop counter (SO_MEMINFO).
	Drops() (uint64, error)
}

// Sink is what the loop tells of its batches and losses: a
// plugin.Emitter. It is the one owner of the loss count; the loop's
// messages read the count back when the sink reports it (LostCount).
type Sink interface {
	// Flush: the socket is drained, buffered output must be written.
	Flush()
	// Lost counts n events the source knows it has lost.
	Lost(n uint64)
}

// LostOf returns the loss count of e (its LostCount method), for the
// notices, or 0 when e does not report it.
func LostOf(e Sink) uint64 {
	if r, ok := e.(interface{ LostCount() uint64 }); ok {
		return r.LostCount()
	}
	return 0
}

// Buffer is the state of one socket's receive buffer. It is owned by the
// receive goroutine (and by Start before Run).
type Buffer struct {
	// Name is the plugin's name as ulogd's messages carry it ("NFCT",
	// "NFLOG").
	Name string
	// Log receives the messages.
	Log *slog.Logger
	// MaxSize is netlink_socket_buffer_maxsize: the buffer grows on
	// overruns up to it; 0 means it never grows.
	MaxSize int
	// SeqCounts means the caller counts losses from sequence gaps
	// (NFLOG seq_local): the drop counter and overruns then count none,
	// they only keep the counter's baseline.
	SeqCounts bool
	// Reliable is NFCT's reliable=1 (nl.Conn.SetReliable): the kernel
	// keeps a DESTROY event it could not queue and delivers it again
	// later, and sends a NEW or UPDATE event it could not queue again with
	// the flow's next event (net/netfilter/nf_conntrack_ecache.c). The
	// drop counter counts every failed attempt, so its growth is not
	// counted as lost but as Retried; the source counts what really did
	// not arrive (see Count).
	Reliable bool

	// Retried is the drop counter's growth in reliable mode: deliveries
	// the kernel will attempt again.
	Retried atomic.Uint64
	// Overruns is the number of ENOBUFS seen.
	Overruns uint64
	// Note rate-limits the notices about losses; the caller may use it
	// for its own.
	Note logging.Limiter

	size       int // last requested size
	maxNoticed bool

	// The drop counter's bookkeeping, under mu: read by the receive loop,
	// and by Sync from other goroutines (SIGUSR1, stop).
	mu       sync.Mutex
	drops    uint64 // last drop counter seen
	hasDrops bool

	dropsAt time.Time // last periodic read; the receive loop's own
}

// Set sizes the socket's receive buffer. Unlike ulogd2 (docs/compat.md N1) size
// (netlink_socket_buffer_size) is applied whatever the maximum; when it is
// 0, DefaultSize is requested, capped at MaxSize when that is set. The
// size the kernel reports back is logged.
func (b *Buffer) Set(ctx context.Context, c Socket, size int) {
	want := size
	if want == 0 {
		want = DefaultSize
		if m := b.MaxSize; m > 0 && m < want {
			want = m
		}
	}
	b.size = want
	eff, err := c.SetReadBuffer(want)
	if err != nil {
		b.Log.Warn(b.Name+" cannot set the netlink socket buffer size", "requested", want, "err", err)
		return
	}
	b.Log.Log(ctx, logging.LevelNotice, fmt.Sprintf("%s netlink buffer size has been set to %d", b.Name, eff), "requested", want)
}

// Baseline reads the socket's drop counter as the starting point of the
// counting; while it is unreadable, PollDrops does nothing.
func (b *Buffer) Baseline(c Socket) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.hasDrops = false
	if d, err := c.Drops(); err == nil {
		b.drops, b.hasDrops = d, true
	}
}

// PollDrops reads the drop counter when it is readable and either force
// is set or a second has passed since the last read. It returns how many
// losses it counted and whether it read the counter.
func (b *Buffer) PollDrops(c Socket, e Sink, now time.Time, force bool) (counted uint64, read bool) {
	b.mu.Lock()
	has := b.hasDrops
	b.mu.Unlock()
	if !has || (!force && now.Sub(b.dropsAt) < dropsEvery) {
		return 0, false
	}
	b.dropsAt = now
	counted, _ = b.countDrops(c, e)
	return counted, true
}

// Sync brings the loss count up to date with the socket's drop counter
// now. Safe to call from any goroutine: the daemon calls it before it
// reports the counters (SIGUSR1, stop), so a drop the receive loop has not
// read yet is counted.
func (b *Buffer) Sync(c Socket, e Sink) {
	b.countDrops(c, e)
}

// Count adds n losses found by the caller (sequence gaps, truncated
// datagrams, NFCT's flows whose NEW event never came in reliable mode).
func (b *Buffer) Count(e Sink, n uint64) { e.Lost(n) }

// countDrops counts the growth of the socket's drop counter as lost (the
// kernel counts every event it could not queue), unless SeqCounts, or as
// Retried in reliable mode. It returns what it counted lost, and false
// when the counter is unreadable.
func (b *Buffer) countDrops(c Socket, e Sink) (counted uint64, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	d, err := c.Drops()
	if err != nil {
		return 0, false
	}
	// The kernel's counter is 32 bits wide: count across a wrap.
	if delta := uint64(uint32(d) - uint32(b.drops)); b.hasDrops && delta != 0 {
		switch {
		case b.Reliable:
			b.Retried.Add(delta)
		case !b.SeqCounts:
			b.Count(e, delta)
			counted = delta
		}
	}
	b.drops, b.hasDrops = d, true
	return counted, true
}

// Overrun handles ENOBUFS: the kernel could not queue events. They are
// counted from the drop counter (one per overrun when it is unreadable,
// none with SeqCounts), the buffer is doubled while that stays within
// MaxSize, and ulogd's notice is logged (rate-limited; the one about the
// maximum once).
func (b *Buffer) Overrun(c Socket, e Sink) {
	b.Overruns++
	if _, ok := b.countDrops(c, e); !ok && !b.SeqCounts && !b.Reliable {
		b.Count(e, 1)
	}
	ctx := context.Background()
	now := time.Now()
	if limit := b.MaxSize; limit != 0 {
		next := b.size * 2
		if next <= limit {
			b.size = next
			eff, err := c.SetReadBuffer(next)
			switch {
			case !b.Note.Allow(now):
			case err != nil:
				b.Log.Warn(b.Name+" cannot grow the netlink socket buffer", "requested", next, "err", err,
					"lost", LostOf(e), "overruns", b.Overruns)
			default:
				b.Log.Log(ctx, logging.LevelNotice, fmt.Sprintf("We are losing events, increasing buffer size to %d", eff),
					"lost", LostOf(e), "overruns", b.Overruns)
			}
		} else if !b.maxNoticed {
			b.maxNoticed = true
			b.Note.Logged(now)
			b.Log.Log(ctx, logging.LevelNotice, fmt.Sprintf("Maximum buffer size (%d) in %s has been reached. Please, consider rising `netlink_socket_buffer_size` and `netlink_socket_buffer_maxsize` clauses.", b.size, b.Name),
				"lost", LostOf(e), "overruns", b.Overruns)
		} else if b.Note.Allow(now) {
			b.Log.Log(ctx, logging.LevelNotice, "We are losing events", "lost", LostOf(e), "overruns", b.Overruns)
		}
	} else if b.Note.Allow(now) {
		b.Log.Log(ctx, logging.LevelNotice, "We are losing events. Please, consider using the clauses `netlink_socket_buffer_size' and `netlink_socket_buffer_maxsize'",
			"lost", LostOf(e), "overruns", b.Overruns)
	}
}
