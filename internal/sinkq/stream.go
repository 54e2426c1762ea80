package sinkq

import (
	"errors"
	"net"
	"sort"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// NewStreamPeer makes a connected stream socket (TCP or Unix) a Peer for
// a receiver that sends nothing back (JSON's socket modes, GRAPHITE's
// Carbon): a goroutine reads from it, and Gone is closed when a read
// fails, that is when the other side closed the connection or it broke,
// so that a dead peer is noticed before the next record goes into the
// void.
func NewStreamPeer(c net.Conn) Peer {
	p := &streamPeer{c: c, gone: make(chan struct{})}
	go func() {
		var b [512]byte
		for {
			if _, err := c.Read(b[:]); err != nil {
				close(p.gone)
				return
			}
		}
	}()
	return p
}

// streamPeer is a TCP or Unix stream connection. It keeps the stream
// offsets at which the records it wrote end, until the peer has them, so
// that when the connection dies it can count the records the kernel still
// held unsent: they are lost with the connection, and counted as dropped.
type streamPeer struct {
	c     net.Conn
	gone  chan struct{}
	total uint64   // bytes written into the connection
	ends  []uint64 // stream offsets after each record written but maybe not delivered
}

func (p *streamPeer) Write(b *Batch) (int, int, error) {
	n, err := p.c.Write(b.Data)
	// Whole records only; a record cut by an error stays queued and is
	// sent again, whole, on the next connection.
	sent := sort.SearchInts(b.Ends, n+1)
	for _, e := range b.Ends[:sent] {
		p.ends = append(p.ends, p.total+uint64(e))
	}
	p.total += uint64(n)
	if err == nil {
		p.trim()
	}
	return sent, 0, err
}

// Delivered returns how many of the total bytes written into c left this
// host's kernel for good: acknowledged by the peer (TCP), or read by it
// (a Unix stream). It reports false when c's socket cannot say.
func Delivered(c net.Conn, total uint64) (uint64, bool) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, false
	}
	_, tcp := c.(*net.TCPConn)
	var (
		acked uint64
		qerr  error = errors.ErrUnsupported
	)
	_ = rc.Control(func(fd uintptr) {
		if tcp {
			// bytes_acked survives a reset, which empties the send
			// queue (SIOCOUTQ then says 0).
			var info *unix.TCPInfo
			if info, qerr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); qerr == nil {
				acked = info.Bytes_acked
			}
			return
		}
		var outq int
		if outq, qerr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ); qerr == nil {
			acked = total - min(total, uint64(outq))
		}
	})
	return acked, qerr == nil
}

// trim forgets the records the peer has.
func (p *streamPeer) trim() {
	acked, ok := Delivered(p.c, p.total)
	if !ok {
		p.ends = p.ends[:0]
		return
	}
	i := sort.Search(len(p.ends), func(i int) bool { return p.ends[i] > acked })
	if i == len(p.ends) {
		p.ends = p.ends[:0]
		return
	}
	if i > 0 {
		p.ends = p.ends[:copy(p.ends, p.ends[i:])]
	}
}

// Close returns how many records written into the connection did not
// reach the peer.
func (p *streamPeer) Close() int {
	p.trim()
	lost := len(p.ends)
	_ = p.c.Close()
	return lost
}

func (p *streamPeer) Interrupt()            { _ = p.c.SetWriteDeadline(time.Unix(1, 0)) }
func (p *streamPeer) Gone() <-chan struct{} { return p.gone }
