package plugin

import (
	"fmt"
	"log/slog"
)

// ConfigOf returns cfg as a plugin's config (type *C), or a fresh default
// from defaults when cfg is nil (an instance made without a config section,
// as in tests). name prefixes the error for any other type.
func ConfigOf[C any](name string, cfg any, defaults func() *C) (*C, error) {
	switch c := cfg.(type) {
	case nil:
		return defaults(), nil
	case *C:
		return c, nil
	}
	return nil, fmt.Errorf("%s: unexpected config type %T", name, cfg)
}

// CheckOut reports an error unless the instance got n output slots (one
// per output key).
func (e *Env) CheckOut(name string, n int) error {
	if len(e.Out) != n {
		return fmt.Errorf("%s: %d output slots for %d keys", name, len(e.Out), n)
	}
	return nil
}

// Logger returns the instance's logger, or slog.Default when it has none.
func (e *Env) Logger() *slog.Logger {
	if e.Log == nil {
		return slog.Default()
	}
	return e.Log
}
