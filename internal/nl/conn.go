package nl

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Conn is a raw AF_NETLINK socket. A Receive with nothing queued parks the
// goroutine (not an OS thread) on the Go runtime poller, and Close wakes it
// up with ErrClosed.
//
// The socket itself is not registered with the runtime poller: the poller
// watches a private epoll instance instead, in which the socket is armed
// one-shot only while a Receive waits for it. Once woken, the socket no
// longer wakes anything until the next wait, however many datagrams arrive.
// A socket registered with the poller directly (edge-triggered) would wake
// the process for every datagram, even while the reader is busy or, with
// SetCoalesce, deliberately letting events accumulate.
//
// Receive must not be called from several goroutines at once on the same
// Conn (it is serialised internally, so doing so is safe but pointless).
// Send, the option setters and Close may be called from any goroutine.
type Conn struct {
	f      *os.File        // the socket: blocking mode, unknown to the poller
	rc     syscall.RawConn // Control keeps the descriptor open during a call
	ep     *os.File        // the private epoll instance, registered with the poller
	erc    syscall.RawConn
	pid    uint32
	closed atomic.Bool
	seq    atomic.Uint32 // NextSeq

	// Receive state, guarded by rmu. The callbacks are method values built
	// once in Open so that handing them to RawConn does not allocate.
	rmu       sync.Mutex
	recvFn    func(fd uintptr)
	armFn     func(fd uintptr)
	armInFn   func(epfd uintptr)
	armFd     uintptr // the socket, for armIn
	harvestFn func(fd uintptr) bool
	rb        *Batch
	rn        int
	rerr      unix.Errno
	everr     unix.Errno
	evbuf     [1]unix.EpollEvent
	coalesce  time.Duration
	lastN     int // datagrams the last TryReceive returned
	next      int // what Wait does: nextWait or nextSleep
	// The coalescing cycle: since cycleAt (the last sleep or wake-up),
	// TryReceive read datagrams that held about cycleLoad bytes of receive
	// buffer. It bounds the next sleep (coalesceDelay).
	cycleAt   time.Time
	cycleLoad int
	lastSleep time.Duration // the last coalescing sleep, 0 after a wait
	rcvbuf    atomic.Int64  // the receive buffer's size (SO_RCVBUF)
}

// Open creates a netlink socket for protocol proto (unix.NETLINK_NETFILTER,
// ...), binds it with port id 0 so that the kernel assigns one, and makes
// the epoll instance Receive waits on.
func Open(proto int) (*Conn, error) {
	// Blocking mode, so that os.NewFile leaves the socket out of the
	// runtime poller; every receive passes MSG_DONTWAIT.
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("bind", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("getsockname", err)
	}
	nsa, ok := sa.(*unix.SockaddrNetlink)
	if !ok {
		unix.Close(fd)
		return nil, fmt.Errorf("nl: getsockname returned %T, want netlink address", sa)
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLONESHOT, Fd: int32(fd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		unix.Close(fd)
		unix.Close(epfd)
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	// Non-blocking, so that os.NewFile registers it with the poller.
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(fd)
		unix.Close(epfd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	f := os.NewFile(uintptr(fd), "netlink")
	ep := os.NewFile(uintptr(epfd), "netlink-epoll")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		ep.Close()
		return nil, err
	}
	erc, err := ep.SyscallConn()
	if err != nil {
		f.Close()
		ep.Close()
		return nil, err
	}
	c := &Conn{f: f, rc: rc, ep: ep, erc: erc, pid: nsa.Pid}
	// Seeded from the clock, so that a request does not take the number
	// of one a previous socket with the same port id sent.
	c.seq.Store(uint32(time.Now().UnixNano()))
	if n, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF); err == nil {
		c.rcvbuf.Store(int64(n))
	}
	c.recvFn = c.recv
	c.armFn = c.arm
	c.armInFn = c.armIn
	c.harvestFn = c.harvest
	return c, nil
}

// PortID is the netlink port id (nl_pid) the kernel assigned at bind time.
func (c *Conn) PortID() uint32 { return c.pid }

// NextSeq returns the sequence number (nlmsg_seq) for the next request
// sent on the socket: replies carry it, so that a reader can tell them
// from stale answers. Safe for concurrent use.
func (c *Conn) NextSeq() uint32 { return c.seq.Add(1) }

// Close closes the socket. A Receive blocked in another goroutine returns
// ErrClosed. Closing twice returns ErrClosed.
func (c *Conn) Close() error {
	if c.closed.Swap(true) {
		return ErrClosed
	}
	// Closing the epoll instance wakes a waiting Receive; the socket is
	// closed once no call holds it (Control).
	eerr := c.ep.Close()
	if err := c.f.Close(); err != nil {
		return err
	}
	return eerr
}

// SetReadDeadline sets a deadline for Receive (and so for ctnl.Dump and
// similar request/response helpers): after it, a waiting or later Receive
// fails with an error matching os.ErrDeadlineExceeded. The zero time clears
// it.
func (c *Conn) SetReadDeadline(t time.Time) error {
	if err := c.ep.SetReadDeadline(t); err != nil {
		return c.closedErr(err)
	}
	return nil
}

// closedErr maps the poller's "file already closed" errors to ErrClosed.
func (c *Conn) closedErr(err error) error {
	if errors.Is(err, fs.ErrClosed) || errors.Is(err, os.ErrClosed) || c.closed.Load() {
		return ErrClosed
	}
	return err
}

// control runs fn on the socket's descriptor.
func (c *Conn) control(fn func(fd int) error) error {
	var ferr error
	if err := c.rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return c.closedErr(err)
	}
	return ferr
}

// Send writes one datagram (one or more netlink messages) to the kernel
// (port id 0). The kernel handles a request synchronously, in the sendto
// call, so a send to it does not wait for buffer space.
func (c *Conn) Send(msg []byte) error {
	to := &unix.SockaddrNetlink{Family: unix.AF_NETLINK}
	return c.control(func(fd int) error {
		return os.NewSyscallError("sendto", unix.Sendto(fd, msg, 0, to))
	})
}

// JoinGroups subscribes the socket to the given multicast group numbers
// (NETLINK_ADD_MEMBERSHIP, one call per group).
func (c *Conn) JoinGroups(groups ...uint32) error {
	return c.control(func(fd int) error {
		for _, g := range groups {
			if err := unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_ADD_MEMBERSHIP, int(g)); err != nil {
				return fmt.Errorf("nl: join group %d: %w", g, os.NewSyscallError("setsockopt", err))
			}
		}
		return nil
	})
}

// LeaveGroups unsubscribes from the given multicast groups
// (NETLINK_DROP_MEMBERSHIP).
func (c *Conn) LeaveGroups(groups ...uint32) error {
	return c.control(func(fd int) error {
		for _, g := range groups {
			if err := unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_DROP_MEMBERSHIP, int(g)); err != nil {
				return fmt.Errorf("nl: leave group %d: %w", g, os.NewSyscallError("setsockopt", err))
			}
		}
		return nil
	})
}

// SetReadBuffer asks for a receive buffer of the given size with
// SO_RCVBUFFORCE, which ignores net.core.rmem_max but needs CAP_NET_ADMIN;
// on EPERM it falls back to SO_RCVBUF (clamped by rmem_max). It returns the
// size the kernel actually applied, read back with SO_RCVBUF: the kernel
// doubles the requested value to account for its bookkeeping overhead.
func (c *Conn) SetReadBuffer(bytes int) (effective int, err error) {
	if bytes < 0 {
		return 0, fmt.Errorf("nl: negative receive buffer size %d", bytes)
	}
	if bytes > math.MaxInt32 {
		bytes = math.MaxInt32
	}
	err = c.control(func(fd int) error {
		err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, bytes)
		if err == unix.EPERM {
			err = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, bytes)
			if err != nil {
				return os.NewSyscallError("setsockopt SO_RCVBUF", err)
			}
		} else if err != nil {
			return os.NewSyscallError("setsockopt SO_RCVBUFFORCE", err)
		}
		effective, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
		if err != nil {
			return os.NewSyscallError("getsockopt SO_RCVBUF", err)
		}
		c.rcvbuf.Store(int64(effective))
		return nil
	})
	return effective, err
}

// ReadBuffer returns the current receive buffer size (SO_RCVBUF).
func (c *Conn) ReadBuffer() (int, error) {
	var n int
	err := c.control(func(fd int) error {
		var err error
		n, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
		return os.NewSyscallError("getsockopt SO_RCVBUF", err)
	})
	return n, err
}

// SetReliable switches reliable delivery on or off: NETLINK_BROADCAST_ERROR
// (the kernel reports failed multicast deliveries to the sender, which lets
// ctnetlink keep dying conntrack entries and retry their DESTROY event) and
// NETLINK_NO_ENOBUFS (no ENOBUFS is reported to this socket).
func (c *Conn) SetReliable(on bool) error {
	v := 0
	if on {
		v = 1
	}
	return c.control(func(fd int) error {
		if err := unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_BROADCAST_ERROR, v); err != nil {
			return os.NewSyscallError("setsockopt NETLINK_BROADCAST_ERROR", err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_NO_ENOBUFS, v); err != nil {
			return os.NewSyscallError("setsockopt NETLINK_NO_ENOBUFS", err)
		}
		return nil
	})
}

// AttachFilter attaches a classic BPF program to the socket
// (SO_ATTACH_FILTER), replacing any previous one. An empty program detaches
// the current filter.
func (c *Conn) AttachFilter(prog []unix.SockFilter) error {
	if len(prog) == 0 {
		return c.DetachFilter()
	}
	if len(prog) > math.MaxUint16 {
		return fmt.Errorf("nl: BPF program of %d instructions is too long", len(prog))
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	return c.control(func(fd int) error {
		return os.NewSyscallError("setsockopt SO_ATTACH_FILTER",
			unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog))
	})
}

// DetachFilter removes the socket filter (SO_DETACH_FILTER). It is not an
// error if none is attached.
func (c *Conn) DetachFilter() error {
	return c.control(func(fd int) error {
		err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DETACH_FILTER, 0)
		if err == unix.ENOENT {
			return nil
		}
		return os.NewSyscallError("setsockopt SO_DETACH_FILTER", err)
	})
}

// Meminfo is the socket memory state reported by SO_MEMINFO.
type Meminfo struct {
	RmemAlloc uint32 // SK_MEMINFO_RMEM_ALLOC: bytes queued for reading (skb truesize)
	Rcvbuf    uint32 // SK_MEMINFO_RCVBUF
	Drops     uint32 // SK_MEMINFO_DROPS: sk_drops, see Drops
}

// Meminfo reads SO_MEMINFO.
func (c *Conn) Meminfo() (Meminfo, error) {
	var mi [unix.SK_MEMINFO_VARS]uint32
	err := c.control(func(fd int) error {
		l := uint32(unsafe.Sizeof(mi))
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_MEMINFO,
			uintptr(unsafe.Pointer(&mi[0])), uintptr(unsafe.Pointer(&l)), 0)
		if e != 0 {
			return os.NewSyscallError("getsockopt SO_MEMINFO", e)
		}
		return nil
	})
	if err != nil {
		return Meminfo{}, err
	}
	return Meminfo{
		RmemAlloc: mi[unix.SK_MEMINFO_RMEM_ALLOC],
		Rcvbuf:    mi[unix.SK_MEMINFO_RCVBUF],
		Drops:     mi[unix.SK_MEMINFO_DROPS],
	}, nil
}

// Drops returns the socket's drop counter (sk_drops, via SO_MEMINFO): the
// number of multicast messages the kernel could not queue on this socket
// because the receive buffer was full, since the socket was created. It is
// the kernel's 32-bit counter, so it wraps at 2^32. Unlike ENOBUFS, which is
// reported once per overrun episode, it counts every lost message.
func (c *Conn) Drops() (uint64, error) {
	mi, err := c.Meminfo()
	return uint64(mi.Drops), err
}
