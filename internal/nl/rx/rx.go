// Package rx is the receive-buffer bookkeeping that the netlink event
// sources (NFCT, NFLOG) share: sizing the socket's receive buffer, and
// handling overruns (ENOBUFS) as ulogd2 does — counting what the kernel
// could not queue from the socket's drop counter, doubling the buffer up
// to netlink_socket_buffer_maxsize and logging ulogd's notices with the
// plugin's name in them, rate-limited.
package rx

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ulogd-go/ulogd/internal/logging"
)

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

// LostCounter is told how many events were lost (a plugin.Emitter).
type LostCounter interface {
	Lost(n uint64)
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

	// Lost is the number of events counted lost (cumulative); the caller
	// adds the losses it finds itself with Count.
	Lost atomic.Uint64
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

// Set sizes the socket's receive buffer. Unlike ulogd2 (Q24) size
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
func (b *Buffer) PollDrops(c Socket, e LostCounter, now time.Time, force bool) (counted uint64, read bool) {
	b.mu.Lock()
	has := b.hasDrops
	b.mu.Unlock()
	if !has || (!force && now.Sub(b.dropsAt) < dropsEvery) {
		return 0, false
	}
	b.dropsAt = now
	before := b.Lost.Load()
	b.countDrops(c, e)
	return b.Lost.Load() - before, true
}

// Sync brings the loss count up to date with the socket's drop counter
// now. Safe to call from any goroutine: the daemon calls it before it
// reports the counters (SIGUSR1, stop), so a drop the receive loop has not
// read yet is counted.
func (b *Buffer) Sync(c Socket, e LostCounter) {
	b.countDrops(c, e)
}

// Count adds n losses found by the caller (sequence gaps, truncated
// datagrams).
func (b *Buffer) Count(e LostCounter, n uint64) {
	b.Lost.Add(n)
	e.Lost(n)
}

// countDrops counts the growth of the socket's drop counter as lost (the
// kernel counts every event it could not queue, also in reliable mode
// where no ENOBUFS is reported), unless SeqCounts. It returns false when
// the counter is unreadable.
func (b *Buffer) countDrops(c Socket, e LostCounter) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	d, err := c.Drops()
	if err != nil {
		return false
	}
	// The kernel's counter is 32 bits wide: count across a wrap.
	if delta := uint64(uint32(d) - uint32(b.drops)); b.hasDrops && delta != 0 && !b.SeqCounts {
		b.Count(e, delta)
	}
	b.drops, b.hasDrops = d, true
	return true
}

// Overrun handles ENOBUFS: the kernel could not queue events. They are
// counted from the drop counter (one per overrun when it is unreadable,
// none with SeqCounts), the buffer is doubled while that stays within
// MaxSize, and ulogd's notice is logged (rate-limited; the one about the
// maximum once).
func (b *Buffer) Overrun(c Socket, e LostCounter) {
	b.Overruns++
	if !b.countDrops(c, e) && !b.SeqCounts {
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
					"lost", b.Lost.Load(), "overruns", b.Overruns)
			default:
				b.Log.Log(ctx, logging.LevelNotice, fmt.Sprintf("We are losing events, increasing buffer size to %d", eff),
					"lost", b.Lost.Load(), "overruns", b.Overruns)
			}
		} else if !b.maxNoticed {
			b.maxNoticed = true
			b.Note.Logged(now)
			b.Log.Log(ctx, logging.LevelNotice, fmt.Sprintf("Maximum buffer size (%d) in %s has been reached. Please, consider rising `netlink_socket_buffer_size` and `netlink_socket_buffer_maxsize` clauses.", b.size, b.Name),
				"lost", b.Lost.Load(), "overruns", b.Overruns)
		} else if b.Note.Allow(now) {
			b.Log.Log(ctx, logging.LevelNotice, "We are losing events", "lost", b.Lost.Load(), "overruns", b.Overruns)
		}
	} else if b.Note.Allow(now) {
		b.Log.Log(ctx, logging.LevelNotice, "We are losing events. Please, consider using the clauses `netlink_socket_buffer_size' and `netlink_socket_buffer_maxsize'",
			"lost", b.Lost.Load(), "overruns", b.Overruns)
	}
}
