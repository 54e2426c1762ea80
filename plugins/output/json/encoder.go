package json

import (
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
)

// Encoder is the JSON sink's record encoding, for the sinks that send the
// same objects elsewhere (KAFKA, NATS): the same keys, names and values
// as a JSON instance with the same options writes, one object per record,
// without the newline.
type Encoder struct{ s *sink }

// NewEncoder returns the encoder a JSON instance with cfg's layout options
// (timestamp, eventv1, device, boolean_label, ...) would use for env's
// upstream keys. cfg's mode, file, host and port are ignored; nothing is
// opened.
func NewEncoder(env *plugin.Env, cfg Config) (*Encoder, error) {
	cfg.Mode = "udp" // a mode that checks no path and opens nothing in New
	if cfg.Host == "" || cfg.Port == "" {
		cfg.Host, cfg.Port = "127.0.0.1", "1"
	}
	inst, err := newSink(env, &cfg)
	if err != nil {
		return nil, err
	}
	return &Encoder{s: inst.(*sink)}, nil
}

// Append appends r's JSON object to b, without a newline. It does not
// allocate once b has room.
func (e *Encoder) Append(b []byte, r *keys.Record) []byte {
	b = e.s.encode(b, r)
	return b[:len(b)-1]
}

// Flush ends a receive batch: records without a time of their own are
// stamped with a clock read once per batch, and the next batch reads it
// again (call it from the sink's Flush).
func (e *Encoder) Flush() { e.s.clock.Reset() }

// CheckLayout validates a layout option's value (ulogd2 or ecs).
func CheckLayout(s string) error { _, err := parseLayout(s); return err }
