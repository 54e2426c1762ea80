package plugin

import (
	"log/slog"
	"testing"

	"github.com/ulogd-go/ulogd/internal/keys"
)

type cfgA struct{ N int }

func TestConfigOf(t *testing.T) {
	def := func() *cfgA { return &cfgA{N: 7} }
	if c, err := ConfigOf("X", nil, def); err != nil || c.N != 7 {
		t.Errorf("nil config: %v, %v; want the default", c, err)
	}
	own := &cfgA{N: 3}
	if c, err := ConfigOf("X", own, def); err != nil || c != own {
		t.Errorf("own config: %v, %v", c, err)
	}
	if _, err := ConfigOf("X", 42, def); err == nil || err.Error() != "X: unexpected config type int" {
		t.Errorf("wrong type: %v", err)
	}
}

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
