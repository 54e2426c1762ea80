package plugin

import (
	"fmt"
	"log/slog"
)

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
