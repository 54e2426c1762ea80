package eventsock

import (
	"bytes"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/ulogd-go/ulogd/internal/netnstest"
	"github.com/ulogd-go/ulogd/internal/nl"
)

// recorder is a Sink and a Handler: it counts the messages, and at each
// Flush how many had come by then.
type recorder struct {
	mu      sync.Mutex
	msgs    int
	flushed []int // msgs at each Flush
	lost    uint64
	changed chan struct{}
}

func (r *recorder) Message(m nl.Msg, raw []byte) error {
	r.mu.Lock()
	r.msgs++
	r.mu.Unlock()
	return nil
}

func (r *recorder) Flush() {
	r.mu.Lock()
	r.flushed = append(r.flushed, r.msgs)
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

func (r *recorder) Lost(n uint64) {
	r.mu.Lock()
	r.lost += n
	r.mu.Unlock()
}

// waitFlushed waits until a Flush has seen n messages.
func (r *recorder) waitFlushed(t *testing.T, n int) []int {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		r.mu.Lock()
		f := append([]int(nil), r.flushed...)
		r.mu.Unlock()
		if len(f) > 0 && f[len(f)-1] >= n {
			return f
		}
		select {
		case <-r.changed:
		case <-deadline:
			t.Fatalf("no flush after %d messages; flushes at %v", n, f)
		}
	}
}

// TestRun checks the loop on a real conntrack event socket: every message
// reaches the handler, the sink is flushed once the socket is drained (after
// the last message of a burst, not after every read), and closing the
// socket ends Run.
func TestRun(t *testing.T) {
	ns := netnstest.NewNS(t)
	ns.EnableConntrack(t)
	c := ns.OpenNetfilter(t)
	var logged bytes.Buffer // read after Run returned
	l := &Loop{Buffer: Buffer{Name: "TEST", Log: slog.New(slog.NewTextHandler(&logged, nil))},
		DecodeMsg: "cannot decode", TruncatedMsg: "truncated"}
	l.SetBuffer(t.Context(), c, 1<<20)
	if err := c.JoinGroups(1); err != nil { // NFNLGRP_CONNTRACK_NEW
		t.Fatal(err)
	}
	l.Ready(c, nl.NewBatch(16, nl.EventDatagramSize))
	r := &recorder{changed: make(chan struct{}, 1)}
	const n = 200 // queued before the loop runs: 13 reads of up to 16
	ns.UDPBurst(t, 20000, n)
	done := make(chan struct{})
	returned := make(chan struct{})
	go func() {
		l.Run(done, r, r)
		close(returned)
	}()
	for _, f := range r.waitFlushed(t, n) {
		if f != n {
			t.Errorf("flush after %d of the %d queued messages: a flush before the socket was drained", f, n)
		}
	}
	close(done)
	c.Close()
	<-returned
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.msgs != n || r.lost != 0 {
		t.Errorf("%d messages, %d lost; want %d, 0\n%s", r.msgs, r.lost, n, logged.String())
	}
}
