package nfct

import "github.com/ulogd-go/ulogd/internal/plugin"

// Metrics reports the receive loop's counts the stack does not keep: the
// messages that could not be decoded and the socket's receive buffer size
// (plugin.Metricer, read when the metrics are scraped).
func (in *instance) Metrics() []plugin.Metric {
	m := []plugin.Metric{{Name: plugin.MetricDecodeErrors, Value: float64(in.rx.loop.DecodeErrors())}}
	if n := in.rx.loop.SocketBuffer(); n > 0 {
		m = append(m, plugin.Metric{Name: plugin.MetricSocketBuffer, Gauge: true, Value: float64(n)})
	}
	return m
}
