package ipfix

import "github.com/ulogd-go/ulogd/internal/plugin"

// Metrics reports the send queue, the spool and reconnections
// (plugin.Metricer). Read between Start and Stop: the daemon stops
// serving metrics before it stops the sinks, and a reload stops them
// with the scrapes held.
func (s *sink) Metrics() []plugin.Metric {
	return s.w.Metrics()
}

// Check reports the collector down while no connection is open
// (plugin.Checker).
func (s *sink) Check() error {
	return s.w.Check()
}
