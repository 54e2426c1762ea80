package json

import (
	"context"
	"errors"
	"net"
	"syscall"
	"time"

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
	return sinkq.NewStreamPeer(c), nil
}

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
