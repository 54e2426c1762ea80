package nl

import (
	"os"
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

// Truncated reports whether the i-th datagram did not fit its slot
// (MSG_TRUNC): Datagram(i) then holds only its first SlotSize bytes, and
// the message walk over it fails. Callers should count it as lost.
func (b *Batch) Truncated(i int) bool { return b.hdrs[i].Hdr.Flags&unix.MSG_TRUNC != 0 }

// Sender returns the source address of the i-th datagram: the sending port
// id (0 for the kernel) and the multicast group mask it was sent to (0 for
// unicast).
func (b *Batch) Sender(i int) (pid, groups uint32) { return b.names[i].Pid, b.names[i].Groups }

// Receive reads up to b.Cap() datagrams with one recvmmsg(MSG_DONTWAIT)
// call, parking the goroutine on the runtime poller while nothing is queued.
// It returns n ≥ 1 with a nil error, or 0 and an error:
//
//   - ErrNoBuffers when the kernel dropped messages (ENOBUFS); the socket
//     stays usable and the next Receive continues with the queued messages;
//   - ErrClosed after Close (also for a Receive blocked while closing);
//
// A datagram larger than its slot is not an error of the whole batch: it is
// returned cut to SlotSize and flagged by b.Truncated(i) (callers report it
// as ErrTruncated), so that the other datagrams of the batch are not lost.
//
// Other errors are *os.SyscallError values.
func (c *Conn) Receive(b *Batch) (n int, err error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	b.n = 0
	c.rb, c.rn, c.rerr = b, 0, 0
	rerr := c.rc.Read(c.recvFn)
	c.rb = nil
	if rerr != nil {
		return 0, c.closedErr(rerr)
	}
	switch c.rerr {
	case 0:
		b.n = c.rn
		return c.rn, nil
	case unix.ENOBUFS:
		return 0, ErrNoBuffers
	case unix.EBADF:
		if c.closed.Load() {
			return 0, ErrClosed
		}
	}
	return 0, os.NewSyscallError("recvmmsg", c.rerr)
}

// recv is the RawConn.Read callback: one non-blocking recvmmsg. It returns
// false (wait for readiness) on EAGAIN.
func (c *Conn) recv(fd uintptr) bool {
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
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		c.rn, c.rerr = int(n), e
		if e == 0 && n == 0 {
			// recvmmsg returns 0 only for vlen 0, which cannot happen;
			// treat it as "nothing ready" rather than a zero-length batch.
			return false
		}
		return true
	}
}

// Err returns ErrTruncated if the i-th datagram was truncated, else nil.
func (b *Batch) Err(i int) error {
	if b.Truncated(i) {
		return ErrTruncated
	}
	return nil
}
