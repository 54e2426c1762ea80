package sinkq

import (
	"fmt"

	"github.com/ulogd-go/ulogd/internal/plugin"
)

// Metrics reports the queue and the connection in the daemon's metric
// names (plugin.Metricer): records and bytes waiting in memory and, with
// overflow=spool, on disk, and the connections made again after the
// first. A sink that writes through a Writer returns
// them from its own Metrics. Safe from any goroutine; a nil Writer (a
// sink not started, or in a mode without a peer) has none.
func (w *Writer) Metrics() []plugin.Metric {
	if w == nil {
		return nil
	}
	st := w.q.Stats()
	reconnects := w.Connects()
	if reconnects > 0 {
		reconnects-- // Start's connection is not a reconnect
	}
	m := []plugin.Metric{
		{Name: plugin.MetricQueueDepth, Gauge: true, Value: float64(st.Depth)},
		{Name: plugin.MetricQueueBytes, Gauge: true, Value: float64(st.Bytes)},
		{Name: plugin.MetricReconnects, Value: float64(reconnects)},
	}
	if sp := w.q.spool; sp != nil {
		ss := sp.Stats()
		m = append(m,
			plugin.Metric{Name: plugin.MetricSpoolBytes, Gauge: true, Value: float64(ss.Bytes)},
			plugin.Metric{Name: plugin.MetricSpoolRecords, Gauge: true, Value: float64(ss.Records)})
	}
	return m
}

// Check reports the peer down while no connection is open (plugin.Checker),
// with the last error seen. A nil Writer is never down.
func (w *Writer) Check() error {
	if w == nil || w.Connected() {
		return nil
	}
	w.noteMu.Lock()
	last := w.lastErr
	w.noteMu.Unlock()
	if last != nil {
		return fmt.Errorf("not connected to %s: %v", w.cfg.Peer, last)
	}
	return fmt.Errorf("not connected to %s", w.cfg.Peer)
}
