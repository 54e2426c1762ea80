package sinkq

import (
	"testing"

	"github.com/ulogd-go/ulogd/internal/plugin"
)

// TestWriterMetrics: the metrics of a writer that never connected: what
// waits in memory and what overflowed to the spool, no reconnect, and
// Check says the peer is down.
func TestWriterMetrics(t *testing.T) {
	sp, err := OpenSpool(SpoolConfig{Dir: t.TempDir(), MaxBytes: 1 << 20, SegmentBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	q := New(Config{MaxRecords: 2, Policy: SpoolPolicy, Overflow: sp})
	w := NewWriter(q, WriterConfig{Peer: "mem:1"})
	for range 5 {
		if !w.Push([]byte("0123456789")) {
			t.Fatal("push refused")
		}
	}
	got := map[string]float64{}
	for _, m := range w.Metrics() {
		got[m.Name] = m.Value
	}
	if got[plugin.MetricQueueDepth] != 2 || got[plugin.MetricQueueBytes] != 20 || got[plugin.MetricSpoolRecords] != 3 ||
		got[plugin.MetricSpoolBytes] <= 30 || got[plugin.MetricReconnects] != 0 {
		t.Errorf("metrics %v: want 2 records (20 bytes) queued, 3 spooled (over 30 bytes), no reconnect", got)
	}
	if err := w.Check(); err == nil || err.Error() != "not connected to mem:1" {
		t.Errorf("Check: %v", err)
	}
	sp.Close(nil)
}

// TestNilWriterReports: a sink without a writer (not started, or a mode
// without a peer) reports no queue metrics and is not down.
func TestNilWriterReports(t *testing.T) {
	var w *Writer
	if m, err := w.Metrics(), w.Check(); m != nil || err != nil {
		t.Errorf("nil Writer: metrics %v, check %v", m, err)
	}
}
