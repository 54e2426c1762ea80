package ifindex

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ulogd-go/ulogd/internal/nl"
)

// rtnetlink message types, group and attribute (linux/rtnetlink.h,
// linux/if_link.h).
const (
	rtmNewLink  = unix.RTM_NEWLINK  // RTM_NEWLINK: a link appeared or changed (also every dump entry)
	rtmDelLink  = unix.RTM_DELLINK  // RTM_DELLINK: a link is gone
	rtmGetLink  = unix.RTM_GETLINK  // RTM_GETLINK: request, here always a dump
	rtnlGrpLink = unix.RTNLGRP_LINK // RTNLGRP_LINK: link notifications
	iflaIfname  = unix.IFLA_IFNAME  // IFLA_IFNAME: the name, NUL-terminated

	ifinfomsgLen = unix.SizeofIfInfomsg // struct ifinfomsg: family, pad, type, index, flags, change
	afUnspec     = unix.AF_UNSPEC       // ifi_family of the messages that describe links themselves
)

// startTimeout bounds the wait for the initial dump; a later dump still
// running after dumpTimeout is taken as lost (its end was in a truncated
// datagram) when a new one is needed.
const (
	startTimeout = 10 * time.Second
	dumpTimeout  = 30 * time.Second
)

// dialRoute opens an rtnetlink socket in the daemon's network namespace.
func dialRoute() (*nl.Conn, error) { return nl.Open(unix.NETLINK_ROUTE) }

// entry is one link. name is never modified once stored: a record may
// alias it until its walk ends, so a rename stores a new slice.
type entry struct {
	name []byte
	gen  uint32 // dump generation that last confirmed the link
}

// linkCache maps interface indexes to names. Lookups take the read lock
// and do not allocate; the receive goroutine applies dump replies and
// link notifications under the write lock.
type linkCache struct {
	mu    sync.RWMutex
	links map[uint32]entry

	// Owned by the receive goroutine (and by openCache before it starts).
	conn    *nl.Conn
	log     *slog.Logger
	seq     uint32 // last request sequence number
	dumpSeq uint32 // sequence number of the running dump
	dumping bool
	dumpAt  time.Time // when the running dump was requested
	again   bool      // notifications were lost during the running dump: dump again after it
	gen     uint32    // generation of the running (or last) dump
	started bool      // the initial dump has finished

	ready    chan struct{} // closed when the initial dump has finished
	readyErr error         // why it failed, read after ready is closed
	done     chan struct{} // closed when the receive goroutine has returned
}

func newLinkCache(log *slog.Logger) *linkCache {
	return &linkCache{
		links: make(map[uint32]entry),
		log:   log,
		ready: make(chan struct{}),
		done:  make(chan struct{}),
	}
}

// openCache opens the socket with dial, joins the link group before
// dumping (so no change between the dump and the subscription is missed),
// and waits for the initial dump.
func openCache(ctx context.Context, log *slog.Logger, dial func() (*nl.Conn, error)) (*linkCache, error) {
	conn, err := dial()
	if err != nil {
		return nil, fmt.Errorf("IFINDEX: rtnetlink socket: %w", err)
	}
	c := newLinkCache(log)
	c.conn = conn
	if err := conn.JoinGroups(rtnlGrpLink); err != nil {
		conn.Close()
		return nil, fmt.Errorf("IFINDEX: %w", err)
	}
	// A burst of link changes (container start-up) must not overrun the
	// socket; failure to enlarge it is not fatal (a lost notification
	// triggers a new dump).
	_, _ = conn.SetReadBuffer(1 << 20)
	if err := c.startDump(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("IFINDEX: link dump: %w", err)
	}
	go c.run()
	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case <-c.ready:
		err = c.readyErr
	case <-ctx.Done():
		err = ctx.Err()
	case <-timer.C:
		err = errors.New("no answer from the kernel")
	}
	if err != nil {
		c.close()
		return nil, fmt.Errorf("IFINDEX: link dump: %w", err)
	}
	return c, nil
}

// close closes the socket and waits for the receive goroutine.
func (c *linkCache) close() {
	c.conn.Close()
	<-c.done
}

// lookup2 returns the names of two indexes under one read lock; ok is
// false for an index not in the cache.
func (c *linkCache) lookup2(a, b uint32) (na []byte, oka bool, nb []byte, okb bool) {
	c.mu.RLock()
	ea, oka := c.links[a]
	eb, okb := c.links[b]
	c.mu.RUnlock()
	return ea.name, oka, eb.name, okb
}

// startDump sends an RTM_GETLINK dump request. Its replies are applied by
// the receive goroutine like notifications; links it does not report are
// removed when it ends.
func (c *linkCache) startDump() error {
	c.seq++
	c.gen++
	c.dumpSeq, c.dumping, c.again, c.dumpAt = c.seq, true, false, time.Now()
	var req [nl.HeaderLen + ifinfomsgLen]byte // ifinfomsg all zero: AF_UNSPEC, every link
	b := nl.AppendHeader(req[:0], rtmGetLink, unix.NLM_F_REQUEST|unix.NLM_F_DUMP, c.seq)
	b = append(b, make([]byte, ifinfomsgLen)...)
	b = nl.FinishMsg(b, 0)
	if err := c.conn.Send(b); err != nil {
		c.dumping = false
		return err
	}
	return nil
}

// resync asks for a new dump after notifications were lost: now, or when
// the running dump ends.
func (c *linkCache) resync() {
	if c.dumping && time.Since(c.dumpAt) < dumpTimeout {
		c.again = true
		return
	}
	if err := c.startDump(); err != nil {
		c.log.Error("IFINDEX: cannot resynchronise the link cache", "error", err)
	}
}

// run is the receive goroutine: it applies every datagram until the socket
// is closed.
func (c *linkCache) run() {
	defer close(c.done)
	b := nl.NewBatch(8, nl.DefaultDatagramSize)
	for {
		n, err := c.conn.Receive(b)
		switch {
		case errors.Is(err, nl.ErrClosed):
			return
		case errors.Is(err, nl.ErrNoBuffers):
			c.log.Warn("IFINDEX: link notifications lost (receive buffer overrun), dumping again")
			c.resync()
			continue
		case err != nil:
			c.log.Error("IFINDEX: receiving link notifications", "error", err)
			time.Sleep(time.Second) // do not spin on a persistent error
			continue
		}
		lost := false
		c.mu.Lock()
		for i := range n {
			if b.Truncated(i) {
				lost = true
			}
			if !c.apply(b.Datagram(i)) {
				lost = true
			}
		}
		c.mu.Unlock()
		if lost {
			c.log.Warn("IFINDEX: malformed or truncated link message, dumping again")
			c.resync()
		} else if !c.dumping && c.again {
			c.resync()
		}
	}
}

// apply handles the messages of one datagram; c.mu is held. It returns
// false when the datagram was malformed.
func (c *linkCache) apply(dgram []byte) bool {
	for len(dgram) > 0 {
		m, rest, err := nl.NextMsg(dgram)
		if err != nil {
			return false
		}
		dgram = rest
		switch {
		case m.IsDone():
			if c.dumping && m.Seq == c.dumpSeq {
				c.endDump(nil)
			}
		case m.IsError():
			if !c.dumping || m.Seq != c.dumpSeq {
				continue
			}
			if errno, err := nl.ErrorCode(m.Payload); err != nil || errno != 0 {
				c.endDump(fmt.Errorf("kernel answered %w", unix.Errno(errno)))
			}
		case m.Type == rtmNewLink:
			c.newLink(m.Payload)
		case m.Type == rtmDelLink:
			if len(m.Payload) >= ifinfomsgLen && m.Payload[0] == afUnspec {
				delete(c.links, binary.NativeEndian.Uint32(m.Payload[4:8]))
			}
		}
	}
	return true
}

// newLink stores the name of a link from an RTM_NEWLINK message. Messages
// of another family (AF_BRIDGE port notifications) are not about the link
// itself and are ignored.
func (c *linkCache) newLink(p []byte) {
	if len(p) < ifinfomsgLen || p[0] != afUnspec {
		return
	}
	idx := binary.NativeEndian.Uint32(p[4:8])
	e, ok := c.links[idx]
	it := nl.Attrs(p[ifinfomsgLen:])
	for it.Next() {
		if it.Type() != iflaIfname {
			continue
		}
		name := it.Data()
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		if !ok || !bytes.Equal(e.name, name) {
			e.name = bytes.Clone(name)
			if e.name == nil {
				e.name = []byte{}
			}
			ok = true
		}
		break
	}
	if ok {
		e.gen = c.gen
		c.links[idx] = e
	}
}

// endDump ends the running dump: on success, links it did not confirm are
// removed (their deletion notice was lost). The first dump's end releases
// openCache.
func (c *linkCache) endDump(err error) {
	c.dumping = false
	if err == nil {
		for idx, e := range c.links {
			if e.gen != c.gen {
				delete(c.links, idx)
			}
		}
	} else if c.started {
		// The cache keeps what it has; the next overrun dumps again.
		c.log.Error("IFINDEX: link dump failed", "error", err)
	}
	if !c.started {
		c.started = true
		c.readyErr = err
		close(c.ready)
	}
}
