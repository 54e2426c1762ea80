package nl

import (
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Suggested Batch dimensions. A conntrack event is a datagram of well under
// 1 KiB; a dump reply datagram is at most 32 KiB (the kernel caps dump skbs
// there); NFLOG datagrams are bounded by the configured nlbufsiz.
const (
	DefaultBatchCount    = 64
	DefaultDatagramSize  = 32 << 10
	EventDatagramSize    = 8 << 10 // enough for any ctnetlink event
	maxRecvmmsgBatchSize = 1024    // UIO_MAXIOV, the kernel's vlen cap
)

// Batch is a set of reusable receive slots for recvmmsg. Receive fills the
// first n slots; nothing is allocated per receive.
type Batch struct {
	size  int
	buf   []byte
	iov   []unix.Iovec
	names []unix.RawSockaddrNetlink
	hdrs  []unix.Mmsghdr
	n     int

	// Datagrams the last Receive dropped because a process sent them, not
	// the kernel, and the last such sender.
	foreign    int
	foreignPid uint32
}

// NewBatch returns a Batch of count slots of size bytes each. count is
// clamped to [1, 1024] and size to at least 4096 bytes. A slot smaller than
// a datagram truncates it (see Truncated); size for the largest datagram the
// socket will see.
func NewBatch(count, size int) *Batch {
	count = min(max(count, 1), maxRecvmmsgBatchSize)
	size = max(size, 4096)
	b := &Batch{
		size:  size,
		buf:   make([]byte, count*size),
		iov:   make([]unix.Iovec, count),
		names: make([]unix.RawSockaddrNetlink, count),
		hdrs:  make([]unix.Mmsghdr, count),
	}
	for i := range b.hdrs {
		b.iov[i].Base = &b.buf[i*size]
		b.iov[i].SetLen(size)
		h := &b.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		h.Iov = &b.iov[i]
		h.SetIovlen(1)
	}
	return b
}

// Len is the number of datagrams the last Receive stored.
func (b *Batch) Len() int { return b.n }

// Cap is the number of slots.
func (b *Batch) Cap() int { return len(b.hdrs) }

// SlotSize is the size of each slot in bytes.
func (b *Batch) SlotSize() int { return b.size }

// Datagram returns the i-th received datagram (0 ≤ i < n of the last
// Receive). It aliases the Batch and is overwritten by the next Receive.
func (b *Batch) Datagram(i int) []byte {
	off := i * b.size
	l := min(int(b.hdrs[i].Len), b.size)
	return b.buf[off : off+l : off+l]
}

// Foreign returns how many datagrams the last Receive dropped because a
// process, not the kernel, sent them to the socket (only a process with
// CAP_NET_ADMIN can), and the port id of the last such sender. Receive
// never returns them: nothing a process sends is a kernel event or answer,
// and libnfnetlink drops them too.
func (b *Batch) Foreign() (n int, pid uint32) { return b.foreign, b.foreignPid }

// keepKernel drops the datagrams among the first n that a process sent,
// moving the later ones down, and returns how many are left.
func (b *Batch) keepKernel(n int) int {
	j := 0
	for i := range n {
		if pid := b.names[i].Pid; pid != 0 {
			b.foreign++
			b.foreignPid = pid
			continue
		}
		if j != i {
			l := min(int(b.hdrs[i].Len), b.size)
			copy(b.buf[j*b.size:j*b.size+l], b.buf[i*b.size:i*b.size+l])
			b.hdrs[j].Len, b.hdrs[j].Hdr.Flags = b.hdrs[i].Len, b.hdrs[i].Hdr.Flags
			b.names[j] = b.names[i]
		}
		j++
	}
	return j
}

// Truncated reports whether the i-th datagram did not fit its slot
// (MSG_TRUNC): Datagram(i) then holds only its first SlotSize bytes, and
// the message walk over it fails. Callers should count it as lost.
func (b *Batch) Truncated(i int) bool { return b.hdrs[i].Hdr.Flags&unix.MSG_TRUNC != 0 }

// Sender returns the source address of the i-th datagram: the sending port
// id (0 for the kernel) and the multicast group mask it was sent to (0 for
// unicast).
func (b *Batch) Sender(i int) (pid, groups uint32) { return b.names[i].Pid, b.names[i].Groups }

// Receive reads up to b.Cap() datagrams, waiting for the socket (and, with
// SetCoalesce, sleeping first) while nothing is queued: it is TryReceive
// and Wait in a loop, for request/response exchanges (dumps,
// acknowledgements) and simple readers. Event loops that flush their sinks
// when the socket is drained call TryReceive and Wait themselves.
func (c *Conn) Receive(b *Batch) (n int, err error) {
	for {
		n, err := c.TryReceive(b)
		if err != ErrDrained {
			return n, err
		}
		if err := c.Wait(); err != nil {
			return 0, err
		}
	}
}

// TryReceive reads up to b.Cap() datagrams with one recvmmsg(MSG_DONTWAIT)
// call, without waiting. It returns n ≥ 1 with a nil error, or 0 and an
// error:
//
//   - ErrDrained when the socket is known to be empty: every datagram
//     returned so far has been handed out and none is queued. The caller
//     does what it has to do before a pause (a source flushes its sinks:
//     one write per burst, however many reads it took) and calls Wait;
//   - ErrNoBuffers when the kernel dropped messages (ENOBUFS); the socket
//     stays usable and the next call continues with the queued messages;
//   - ErrClosed after Close;
//   - an error matching os.ErrDeadlineExceeded after the read deadline (from
//     Wait).
//
// Datagrams that a process sent rather than the kernel are dropped (see
// Batch.Foreign).
//
// A datagram larger than its slot is not an error of the whole batch: it is
// returned cut to SlotSize and flagged by b.Truncated(i) (callers report it
// as ErrTruncated), so that the other datagrams of the batch are not lost.
//
// With SetCoalesce, a call that follows one which emptied the socket of
// several datagrams (fewer than the batch holds) reports ErrDrained without
// reading: the Wait after it sleeps for up to the coalescing delay.
//
// Other errors are *os.SyscallError values.
func (c *Conn) TryReceive(b *Batch) (n int, err error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	b.n, b.foreign = 0, 0
	if c.coalesce > 0 && c.lastN >= coalesceMin && c.lastN < len(b.hdrs) {
		c.lastN, c.next = 0, nextSleep
		return 0, ErrDrained
	}
	c.lastN = 0
	c.rb = b
	defer func() { c.rb = nil }()
	for {
		c.rn, c.rerr = 0, 0
		if err := c.rc.Control(c.recvFn); err != nil {
			return 0, c.closedErr(err)
		}
		switch c.rerr {
		case 0:
			c.cycleLoad += b.load(c.rn)
			n := b.keepKernel(c.rn)
			if n == 0 {
				continue // only datagrams from processes: read on
			}
			b.n, c.lastN = n, n
			return n, nil
		case unix.EAGAIN:
			c.next = nextWait
			return 0, ErrDrained
		case unix.ENOBUFS:
			return 0, ErrNoBuffers
		case unix.EBADF:
			if c.closed.Load() {
				return 0, ErrClosed
			}
		}
		return 0, os.NewSyscallError("recvmmsg", c.rerr)
	}
}

// What Wait does after ErrDrained.
const (
	nextWait  = iota // park until the socket is readable
	nextSleep        // sleep for the coalescing delay (SetCoalesce)
)

// Wait pauses until the next TryReceive is worth calling: after a
// TryReceive that found the socket empty, it parks the goroutine on the
// runtime poller until the socket is readable (or the read deadline
// passes, or Close); after one that reported ErrDrained for coalescing, it
// sleeps for the coalescing delay, cut short by the rate of the last cycle
// (see SetCoalesce). It returns ErrClosed after Close and an error matching
// os.ErrDeadlineExceeded after the read deadline.
func (c *Conn) Wait() error {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	next := c.next
	c.next = nextWait
	if next == nextSleep {
		now := time.Now()
		d := coalesceDelay(c.coalesce, c.lastSleep, int(c.rcvbuf.Load()), c.cycleLoad, now.Sub(c.cycleAt))
		if d > 0 {
			time.Sleep(d)
		}
		c.cycleAt, c.cycleLoad, c.lastSleep = now, 0, d
		if c.closed.Load() {
			return ErrClosed
		}
		return nil
	}
	if err := c.wait(); err != nil {
		return err
	}
	c.cycleAt, c.cycleLoad, c.lastSleep = time.Now(), 0, 0
	return nil
}

// EventCoalesce is the longest coalescing delay (SetCoalesce) of the event
// sources (NFCT, NFLOG). At 40k events/s it turns about 25 wake-ups, reads
// and sync=1 writes into one, and it delays a record by at most about 4 ms.
//
// Each timed sleep costs a fixed amount of CPU however short it is (about
// 25 µs on the 2-vCPU VM of docs/performance.md: programming the timer and
// waking from idle), so the delay is what bounds the cost of a steady
// stream: 1 ms cost about 10 % more CPU per event than 4 ms at 40k events/s.
const EventCoalesce = 4 * time.Millisecond

// coalesceDelay is how long Wait lets events accumulate: max, unless
//
//   - the rate of the last cycle (load bytes of receive buffer in span)
//     would fill more than a quarter of the receive buffer (rcvbuf) in
//     that time;
//   - it is more than twice the last sleep (last, 0 after a wait) and
//     minCoalesce: a sleep grows with the stream, so that a lull of one
//     cycle, which makes the rate look low, is not followed by a long
//     sleep that the next burst would overflow.
//
// A delay too short to be worth a sleep is 0.
func coalesceDelay(max, last time.Duration, rcvbuf, load int, span time.Duration) time.Duration {
	limit := min(max, 2*last+minCoalesce)
	switch {
	case load <= 0:
		return limit // nothing was queued
	case span <= 0:
		return 0 // no rate to go by
	}
	// span × (rcvbuf/4) / load, in float64: no overflow (span is huge
	// before the first cycle, from the zero time; the ramp bounds that
	// first sleep), and rounding does not matter here. It is compared before
	// the conversion, which would not saturate.
	d := float64(span) * float64(rcvbuf) / 4 / float64(load)
	switch {
	case d >= float64(limit):
		return limit
	case d < float64(minCoalesce):
		return 0
	}
	return time.Duration(d)
}

// minCoalesce is the shortest sleep coalesceDelay returns.
const minCoalesce = 100 * time.Microsecond

// load estimates the receive buffer the first n datagrams of the last read
// held: the kernel charges each its buffer's true size (the buffer it
// allocated, rounded up to a slab size, plus the socket buffer's
// bookkeeping). A 160-byte conntrack event is charged 1280 bytes; the
// estimate errs on the high side.
func (b *Batch) load(n int) int {
	sum := 0
	for i := range n {
		sum += 2*int(b.hdrs[i].Len) + 1024
	}
	return sum
}

// coalesceMin is how many datagrams the previous TryReceive must have
// returned for the next Wait to sleep (SetCoalesce): a lone event is not a
// stream worth waiting for.
const coalesceMin = 2

// SetCoalesce makes the reader let events accumulate: after a TryReceive
// that returned at least two datagrams but fewer than the batch holds (it
// emptied the socket), the next one reports ErrDrained without reading and
// the Wait after it sleeps for up to d, so that the following TryReceive
// reads the events of that time in one call instead of waking for every
// few of them. The events wait in the socket's receive buffer meanwhile: the
// sleep is cut short when, at the rate of the last cycle, they would fill
// more than a quarter of it. 0 (the default) turns it off.
func (c *Conn) SetCoalesce(d time.Duration) {
	c.rmu.Lock()
	c.coalesce = max(d, 0)
	c.rmu.Unlock()
}

// wait arms the socket in the private epoll instance and parks until the
// socket is readable (or the deadline passes, or Close).
func (c *Conn) wait() error {
	c.everr = 0
	if err := c.rc.Control(c.armFn); err != nil {
		return c.closedErr(err)
	}
	if c.everr != 0 {
		return c.closedErr(os.NewSyscallError("epoll_ctl", c.everr))
	}
	if err := c.erc.Read(c.harvestFn); err != nil {
		return c.closedErr(err)
	}
	if c.everr != 0 {
		return os.NewSyscallError("epoll_wait", c.everr)
	}
	return nil
}

// arm is the Control callback on the socket that re-arms its one-shot
// registration (through armIn, under the epoll instance's Control, so that
// neither descriptor can be closed and reused meanwhile). If the socket is
// readable already, the epoll instance becomes readable at once.
func (c *Conn) arm(fd uintptr) {
	c.armFd = fd
	if err := c.erc.Control(c.armInFn); err != nil {
		c.everr = unix.EBADF // closed
	}
}

func (c *Conn) armIn(epfd uintptr) {
	ev := &c.evbuf[0]
	ev.Events = unix.EPOLLIN | unix.EPOLLONESHOT
	ev.Fd = int32(c.armFd)
	// Raw: epoll_ctl does not block.
	_, _, e := unix.RawSyscall6(unix.SYS_EPOLL_CTL, epfd, unix.EPOLL_CTL_MOD, c.armFd,
		uintptr(unsafe.Pointer(ev)), 0, 0)
	c.everr = e
}

// harvest is the RawConn.Read callback on the epoll instance: it reports
// whether the socket is readable, which also disarms it (one-shot).
func (c *Conn) harvest(epfd uintptr) bool {
	for {
		n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, epfd, uintptr(unsafe.Pointer(&c.evbuf[0])),
			1, 0, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case 0:
			return n > 0
		}
		c.everr = e
		return true
	}
}

// recv is the Control callback: one non-blocking recvmmsg. It leaves
// EAGAIN in rerr when nothing is queued.
func (c *Conn) recv(fd uintptr) {
	b := c.rb
	for i := range b.hdrs {
		h := &b.hdrs[i]
		h.Hdr.Namelen = unix.SizeofSockaddrNetlink
		h.Hdr.Flags = 0
		h.Len = 0
	}
	for {
		// RawSyscall6, not Syscall6: with MSG_DONTWAIT the call never
		// blocks, so it needs no entersyscall/exitsyscall. Those wake the
		// runtime's sysmon thread whenever the process was idle, which cost
		// a futex round trip and two context switches per receive batch.
		n, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.hdrs[0])),
			uintptr(len(b.hdrs)), unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e == 0 && n == 0 {
			// recvmmsg returns 0 only for vlen 0, which cannot happen;
			// treat it as "nothing ready" rather than a zero-length batch.
			e = unix.EAGAIN
		}
		c.rn, c.rerr = int(n), e
		return
	}
}

// Err returns ErrTruncated if the i-th datagram was truncated, else nil.
func (b *Batch) Err(i int) error {
	if b.Truncated(i) {
		return ErrTruncated
	}
	return nil
}
