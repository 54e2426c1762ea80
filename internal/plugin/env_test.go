package plugin

import (
	"log/slog"
	"testing"

	"github.com/ulogd-go/ulogd/internal/keys"
)

func TestEnvCheckOutAndLogger(t *testing.T) {
	e := &Env{Out: []keys.Slot{0, 1}}
	if err := e.CheckOut("X", 2); err != nil {
		t.Error(err)
	}
	if err := e.CheckOut("X", 3); err == nil || err.Error() != "X: 2 output slots for 3 keys" {
		t.Errorf("CheckOut: %v", err)
	}
	if e.Logger() != slog.Default() {
		t.Error("no logger: want slog.Default")
	}
	l := slog.New(slog.DiscardHandler)
	e.Log = l
	if e.Logger() != l {
		t.Error("Logger is not env.Log")
	}
}
