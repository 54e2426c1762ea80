package daemon

import (
	"context"
	"log/slog"

	"github.com/ulogd-go/ulogd/internal/logging"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/stack"
)

// logCounters writes every instance's counters to the daemon log (on
// SIGUSR1 and at exit).
func logCounters(log *slog.Logger, g *stack.Graph) {
	for _, in := range g.Instances() {
		log.Log(context.Background(), logging.LevelNotice, "counters", counterAttrs(in)...)
	}
}

// counterAttrs are the counters of one instance: events and lost for a
// source; received, stopped and failed for the others, written for a sink
// that counts what reached its file or peer, and dropped for a sink that
// can drop records it accepted.
func counterAttrs(in *stack.Node) []any {
	st := in.Stats()
	attrs := []any{"instance", in.ID, "plugin", in.Desc.Name}
	if in.Desc.Kind == plugin.Source {
		return append(attrs, "events", st.Received.Load(), "lost", st.Lost.Load())
	}
	attrs = append(attrs, "received", st.Received.Load(), "stopped", st.Stopped.Load(), "failed", st.Failed.Load())
	if w, ok := in.Inst.(plugin.WriteCounter); ok {
		attrs = append(attrs, "written", w.Written())
	}
	if d, ok := in.Inst.(plugin.Dropper); ok {
		attrs = append(attrs, "dropped", d.Dropped())
	}
	return attrs
}
