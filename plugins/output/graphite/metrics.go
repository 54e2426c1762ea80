package graphite

import "github.com/ulogd-go/ulogd/internal/plugin"

// Metrics reports the send queue and reconnections (plugin.Metricer).
func (s *sink) Metrics() []plugin.Metric {
	if m, ok := s.out.(plugin.Metricer); ok {
		return m.Metrics()
	}
	return nil
}

// Check reports the server down while no connection is open
// (plugin.Checker).
func (s *sink) Check() error {
	if c, ok := s.out.(plugin.Checker); ok {
		return c.Check()
	}
	return nil
}

func (s *queueSender) Metrics() []plugin.Metric { return s.w.Metrics() }
func (s *queueSender) Check() error             { return s.w.Check() }
