package json

import (
	"context"
	"errors"
	"net"
	"sort"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ulogd-go/ulogd/internal/sinkq"
)

// dial opens a connection to the configured peer.
func (s *sink) dial(ctx context.Context) (sinkq.Peer, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.DialContext(ctx, s.network, s.addr)
	if err != nil {
		return nil, err
	}
	if s.mode == modeUDP {
		return &datagramPeer{c: c}, nil
	}
	p := &streamPeer{c: c, tcp: s.mode == modeTCP, gone: make(chan struct{})}
	go func() {
		// The peer sends nothing; a read returns when it closes the
		// connection or the connection fails (or we close it), so that a
		// dead peer is noticed before the next record goes into the void.
		var b [512]byte
		for {
			if _, err := c.Read(b[:]); err != nil {
				close(p.gone)
				return
			}
		}
	}()
	return p, nil
}

// streamPeer is a TCP or Unix stream connection. It keeps the stream
// offsets at which the records it wrote end, until the peer has them, so
// that when the connection dies it can count the records the kernel still
// held unsent: they are lost with the connection, and counted as dropped.
type streamPeer struct {
	c     net.Conn
	tcp   bool
	gone  chan struct{}
	total uint64   // bytes written into the connection
	ends  []uint64 // stream offsets after each record written but maybe not delivered
}

func (p *streamPeer) Write(b *sinkq.Batch) (int, int, error) {
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

// delivered returns how many bytes of the stream left this host's kernel
// for good: acknowledged by the peer (TCP), or read by it (Unix).
func (p *streamPeer) delivered() (uint64, bool) {
	sc, ok := p.c.(syscall.Conn)
	if !ok {
		return 0, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, false
	}
	var (
		acked uint64
		qerr  error = errors.ErrUnsupported
	)
	_ = rc.Control(func(fd uintptr) {
		if p.tcp {
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
			acked = p.total - min(p.total, uint64(outq))
		}
	})
	return acked, qerr == nil
}

// trim forgets the records the peer has.
func (p *streamPeer) trim() {
	acked, ok := p.delivered()
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

// datagramPeer sends one record per datagram (UDP).
type datagramPeer struct {
	c net.Conn
}

func (p *datagramPeer) Write(b *sinkq.Batch) (int, int, error) {
	for i := range b.Len() {
		rec := b.Record(i)
		_, err := p.c.Write(rec)
		if err != nil && errors.Is(err, syscall.ECONNREFUSED) {
			// The error belongs to an earlier datagram (ICMP port
			// unreachable); this one was not sent: try again.
			_, err = p.c.Write(rec)
		}
		switch {
		case err == nil:
		case errors.Is(err, syscall.EMSGSIZE):
			return i, 1, nil // can never be sent
		default:
			return i, 0, err
		}
	}
	return b.Len(), 0, nil
}

func (p *datagramPeer) Close() int            { _ = p.c.Close(); return 0 }
func (p *datagramPeer) Interrupt()            { _ = p.c.SetWriteDeadline(time.Unix(1, 0)) }
func (p *datagramPeer) Gone() <-chan struct{} { return nil }
