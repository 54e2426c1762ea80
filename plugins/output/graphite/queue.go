package graphite

import (
	"context"
	"log/slog"
	"net"
	"time"

	"github.com/ulogd-go/ulogd/internal/sinkq"
)

// tunables pace the writer; tests shrink them. (The queue's bounds are
// options: sinkq.Options in Config.)
type tunables struct {
	backoffMin, backoffMax time.Duration
	drain                  time.Duration
}

func defaultTunables() tunables {
	return tunables{
		backoffMin: time.Second,
		backoffMax: 30 * time.Second,
		drain:      2 * time.Second,
	}
}

// queueSender is the shared sink queue (internal/sinkq) and its writer,
// connected to the server over TCP.
type queueSender struct {
	q *sinkq.Queue
	w *sinkq.Writer
}

// newSender builds the queue of opts (opening the spool under
// overflow=spool) and its writer.
func newSender(addr string, log *slog.Logger, tun tunables, opts *sinkq.Options) (*queueSender, error) {
	q, err := opts.Open()
	if err != nil {
		return nil, err
	}
	w := sinkq.NewWriter(q, sinkq.WriterConfig{
		// With a spool, a server down at start-up is waited for.
		StartAnyway: q.Spool() != nil,
		Dial:        func(ctx context.Context) (sinkq.Peer, error) { return dial(ctx, addr) },
		BackoffMin:  tun.backoffMin,
		BackoffMax:  tun.backoffMax,
		Drain:       tun.drain,
		Log:         log,
		Peer:        "tcp:" + addr,
		Texts: sinkq.Texts{
			Full:      "GRAPHITE: send queue full, dropping records",
			SendError: "GRAPHITE: Failure sending message",
			Redial:    "GRAPHITE: can't reconnect",
			Connected: "GRAPHITE: connected",
			DropStop:  "GRAPHITE: records dropped (send queue full, or lost with a connection)",
		},
	})
	return &queueSender{q: q, w: w}, nil
}

func (s *queueSender) Start(ctx context.Context) error { return s.w.Start(ctx) }
func (s *queueSender) Push(rec []byte) bool            { return s.w.Push(rec) }
func (s *queueSender) Stop(ctx context.Context) error  { return s.w.Stop(ctx) }
func (s *queueSender) Dropped() uint64                 { return s.q.Dropped() }
func (s *queueSender) Written() uint64                 { return s.q.Written() }

// dial connects to the server.
func dial(ctx context.Context, addr string) (sinkq.Peer, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return sinkq.NewStreamPeer(c), nil
}
