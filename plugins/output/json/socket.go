package json

import (
	"context"
	"fmt"
	"time"

	"github.com/ulogd-go/ulogd/internal/sinkq"
)

// tunables are the socket modes' bounds and delays: fields of the sink, so
// that tests can shrink them without touching other instances.
type tunables struct {
	// queueBytes and queueRecords bound what waits for a socket peer.
	queueBytes, queueRecords int
	// backoffMin and backoffMax bound the wait between reconnection
	// attempts; the first attempt after a loss is immediate.
	backoffMin, backoffMax time.Duration
	// stopDrain is how long Stop waits for the queue to drain.
	stopDrain time.Duration
}

func defaultTunables() tunables {
	return tunables{
		queueBytes:   16 << 20,
		queueRecords: 1 << 20,
		backoffMin:   time.Second,
		backoffMax:   30 * time.Second,
		stopDrain:    2 * time.Second,
	}
}

// newQueue builds the socket modes' queue and its writer (not started).
func (s *sink) newQueue() {
	s.q = sinkq.New(sinkq.Config{MaxRecords: s.tun.queueRecords, MaxBytes: s.tun.queueBytes, Policy: sinkq.Drop})
	s.w = sinkq.NewWriter(s.q, sinkq.WriterConfig{
		Dial:       s.dial,
		BackoffMin: s.tun.backoffMin,
		BackoffMax: s.tun.backoffMax,
		Drain:      s.tun.stopDrain,
		Log:        s.log,
		Peer:       s.network + ":" + s.addr,
		Texts: sinkq.Texts{
			Full:      "JSON: send queue full, dropping records",
			SendError: "JSON: Failure sending message",
			Redial:    "JSON: can't reconnect",
			Connected: "JSON: connected",
			DropStop:  "JSON: records dropped (send queue full, unsendable, or lost with a connection)",
		},
	})
}

func (s *sink) startSocket(ctx context.Context) error {
	s.newQueue()
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
