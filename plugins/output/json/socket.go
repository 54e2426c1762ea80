package json

import (
	"context"
	"fmt"
	"time"

	"github.com/ulogd-go/ulogd/internal/sinkq"
)

// tunables are the socket modes' delays: fields of the sink, so that tests
// can shrink them without touching other instances. (The queue's bounds are
// options: sinkq.Options in Config.)
type tunables struct {
	// backoffMin and backoffMax bound the wait between reconnection
	// attempts; the first attempt after a loss is immediate.
	backoffMin, backoffMax time.Duration
	// stopDrain is how long Stop waits for the queue to drain.
	stopDrain time.Duration
}

func defaultTunables() tunables {
	return tunables{
		backoffMin: time.Second,
		backoffMax: 30 * time.Second,
		stopDrain:  2 * time.Second,
	}
}

// newQueue builds the socket modes' queue (opening the spool under
// overflow=spool) and its writer (not started).
func (s *sink) newQueue() error {
	q, err := s.cfg.Options.Open()
	if err != nil {
		return err
	}
	s.q = q
	s.w = sinkq.NewWriter(s.q, sinkq.WriterConfig{
		// With a spool, a peer down at start-up is waited for.
		StartAnyway: s.q.Spool() != nil,
		Dial:        s.dial,
		BackoffMin:  s.tun.backoffMin,
		BackoffMax:  s.tun.backoffMax,
		Drain:       s.tun.stopDrain,
		Log:         s.log,
		Peer:        s.network + ":" + s.addr,
		Texts: sinkq.Texts{
			Full:      "JSON: send queue full, dropping records",
			SendError: "JSON: Failure sending message",
			Redial:    "JSON: can't reconnect",
			Connected: "JSON: connected",
			DropStop:  "JSON: records dropped (send queue full, unsendable, or lost with a connection)",
		},
	})
	return nil
}

func (s *sink) startSocket(ctx context.Context) error {
	if err := s.newQueue(); err != nil {
		return fmt.Errorf("JSON: %w", err)
	}
	if err := s.w.Start(ctx); err != nil {
		return fmt.Errorf("can't connect to %s %s: %w", s.network, s.addr, err)
	}
	return nil
}

// stopSocket lets the writer send what is queued for up to stopDrain (or
// ctx's deadline), then closes the connection; what was left is counted
// as dropped and reported.
func (s *sink) stopSocket(ctx context.Context) error {
	if s.w == nil {
		return nil
	}
	if err := s.w.Stop(ctx); err != nil {
		return fmt.Errorf("JSON: %w", err)
	}
	return nil
}
