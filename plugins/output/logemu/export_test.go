package logemu

import (
	"log/slog"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
)

func desc() *plugin.Descriptor {
	d, _ := plugin.Default.Lookup("LOGEMU")
	return d
}

func envFor(cfg *Config) *plugin.Env {
	return &plugin.Env{ID: "emu1", Config: cfg, In: []keys.Slot{0, 1}, Log: slog.New(slog.DiscardHandler)}
}
