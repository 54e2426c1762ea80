package ipfix

import (
	"context"
	"errors"
	"net"
	"syscall"
	"time"

	"github.com/ulogd-go/ulogd/internal/ipfix"
	"github.com/ulogd-go/ulogd/internal/sinkq"
)

// dialTimeout bounds one connection attempt.
const dialTimeout = 5 * time.Second

// peer is one transport session: a connected UDP socket or a TCP
// connection, with the encoder that numbers its messages and knows which
// templates it was sent.
type peer struct {
	c       net.Conn
	udp     bool
	enc     ipfix.Encoder
	refresh time.Duration
	lastTpl time.Time // UDP: when the templates were last sent
	now     func() time.Time
	gone    chan struct{}

	// TCP: the messages written but maybe not delivered, so that Close
	// can count the records lost with the connection.
	total   uint64    // bytes written into the connection
	unacked []written // in stream order
}

// written is a message in the TCP stream: where it ends, and how many
// records it carries.
type written struct {
	end     uint64
	records int
}

// dial opens a new session (sinkq.WriterConfig.Dial).
func (s *sink) dial(ctx context.Context) (sinkq.Peer, error) {
	d := net.Dialer{Timeout: dialTimeout}
	c, err := d.DialContext(ctx, s.opt.network, s.opt.addr)
	if err != nil {
		return nil, err
	}
	p := &peer{
		c:       c,
		udp:     s.opt.network == "udp",
		enc:     ipfix.Encoder{Domain: s.opt.domain, MTU: s.opt.mtu, Mode: s.opt.mode, MarkPEN: s.opt.markPEN},
		refresh: s.opt.refresh,
		now:     s.tun.now,
	}
	p.lastTpl = p.now()
	if !p.udp {
		// A collector sends nothing; a read returns when it closes the
		// connection (or the connection fails, or we close it).
		p.gone = make(chan struct{})
		go func() {
			var b [512]byte
			for {
				if _, err := c.Read(b[:]); err != nil {
					close(p.gone)
					return
				}
			}
		}()
	}
	return p, nil
}

// Write packs the batch's records into messages of at most the MTU and
// sends them. The records of a message that could not be sent stay
// queued (whole messages: a new session numbers them again).
func (p *peer) Write(b *sinkq.Batch) (sent, discarded int, err error) {
	now := p.now()
	if p.udp && p.refresh > 0 && now.Sub(p.lastTpl) >= p.refresh {
		p.enc.ResendTemplates()
		p.lastTpl = now
	}
	first := 0 // first record of the message being built
	// flush sends the message of records first..end-1.
	flush := func(end int) (bool, int, int, error) {
		err := p.send(now)
		switch {
		case err == nil:
			return true, 0, 0, nil
		case p.udp && errors.Is(err, syscall.EMSGSIZE):
			// The path takes no datagram that large: these records can
			// never be sent. The next message carries its templates.
			p.enc.ResendTemplates()
			return false, first, end - first, nil
		}
		return false, first, 0, err
	}
	for i := 0; i < b.Len(); i++ {
		rec := b.Record(i)
		if !p.enc.Fits(rec) {
			if ok, s, d, err := flush(i); !ok {
				return s, d, err
			}
			first = i
		}
		if err := p.enc.Add(rec); err != nil {
			// Only a record that fits no message gets here (the MTU
			// was checked against the largest): it can never be sent.
			if ok, s, d, err := flush(i); !ok {
				return s, d, err
			}
			return i, 1, nil
		}
	}
	if ok, s, d, err := flush(b.Len()); !ok {
		return s, d, err
	}
	p.trim()
	return b.Len(), 0, nil
}

// send finishes the current message and writes it.
func (p *peer) send(now time.Time) error {
	records := p.enc.Pending()
	m := p.enc.Finish(now)
	if m == nil {
		return nil
	}
	n, err := p.c.Write(m)
	if err != nil && p.udp && errors.Is(err, syscall.ECONNREFUSED) {
		// The error belongs to an earlier datagram (an ICMP port
		// unreachable); this one was not sent: try again.
		n, err = p.c.Write(m)
	}
	if !p.udp {
		p.total += uint64(n)
		if err == nil {
			p.unacked = append(p.unacked, written{end: p.total, records: records})
		}
	}
	return err
}

// trim forgets the messages the collector acknowledged.
func (p *peer) trim() {
	if len(p.unacked) == 0 {
		return
	}
	acked, ok := sinkq.Delivered(p.c, p.total)
	if !ok {
		p.unacked = p.unacked[:0]
		return
	}
	i := 0
	for i < len(p.unacked) && p.unacked[i].end <= acked {
		i++
	}
	p.unacked = p.unacked[:copy(p.unacked, p.unacked[i:])]
}

// Close closes the connection and returns how many records written into
// it did not reach the collector (TCP: messages not acknowledged whole).
func (p *peer) Close() int {
	p.trim()
	lost := 0
	for _, w := range p.unacked {
		lost += w.records
	}
	p.unacked = nil
	p.c.Close()
	return lost
}

func (p *peer) Interrupt() { _ = p.c.SetWriteDeadline(time.Unix(1, 0)) }

func (p *peer) Gone() <-chan struct{} { return p.gone }
