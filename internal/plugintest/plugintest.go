// Package plugintest runs one real plugin inside a real stack, between a
// test source that provides chosen keys and a test sink that captures what
// reaches the end, so plugin tests exercise the same binding and walk as
// the daemon. For source plugins it has the emitters their tests run them
// with (Recorder, Discard) and Source, which runs one as the stack does.
package plugintest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ulogd-go/ulogd/internal/config"
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/stack"
)

// Harness is a built and started stack: TESTSRC → plugins… → TESTSINK (the
// sink is left out when the last plugin is a sink).
type Harness struct {
	t       testing.TB
	Graph   *stack.Graph
	src     *source
	sink    *sink
	rec     *keys.Record
	emitter plugin.Emitter
	names   map[string]keys.Slot
	// Verdicts of the test sink: whether each event reached the end.
	Reached []bool
}

type source struct {
	em chan plugin.Emitter
}

func (s *source) Start(context.Context) error { return nil }
func (s *source) Stop(context.Context) error  { return nil }
func (s *source) Run(ctx context.Context, e plugin.Emitter) error {
	s.em <- e
	<-ctx.Done()
	return nil
}

type sink struct {
	env     *plugin.Env
	reached bool
	values  map[string]string
	valid   map[string]bool
}

func (s *sink) Start(context.Context) error { return nil }
func (s *sink) Stop(context.Context) error  { return nil }
func (s *sink) Interp(r *keys.Record) plugin.Verdict {
	s.reached = true
	clear(s.values)
	clear(s.valid)
	for _, u := range s.env.Upstream {
		if !r.Valid(u.Slot) {
			continue
		}
		s.valid[u.Name] = true
		if v, ok := r.AppendValue(nil, u.Slot); ok {
			s.values[u.Name] = string(v)
		} else {
			s.values[u.Name] = string(r.Bytes(u.Slot))
		}
	}
	return plugin.Continue
}

// New builds "src:TESTSRC,<chain>[,out:TESTSINK]" where chain is a stack
// fragment such as "ip2str1:IP2STR,print1:PRINTFLOW" using plugins from the
// default registry, with extra config text (sections) appended. provides
// are the source's output keys.
func New(t testing.TB, chain, sections string, provides []keys.Spec) *Harness {
	t.Helper()
	reg := plugin.NewRegistry()
	src := &source{em: make(chan plugin.Emitter, 1)}
	h := &Harness{t: t, src: src, names: map[string]keys.Slot{}}
	reg.Register(&plugin.Descriptor{
		Name: "TESTSRC", Kind: plugin.Source,
		Keys: func(any) ([]keys.Spec, []keys.Spec, error) { return nil, provides, nil },
		New:  func(*plugin.Env) (plugin.Instance, error) { return src, nil },
	})
	reg.Register(&plugin.Descriptor{
		Name: "TESTSINK", Kind: plugin.Sink, Wildcard: true,
		New: func(env *plugin.Env) (plugin.Instance, error) {
			h.sink = &sink{env: env, values: map[string]string{}, valid: map[string]bool{}}
			return h.sink, nil
		},
	})
	last := ""
	for _, tok := range strings.Split(chain, ",") {
		_, name, _ := strings.Cut(tok, ":")
		d, ok := plugin.Default.Lookup(name)
		if !ok {
			t.Fatalf("plugin %s is not registered", name)
		}
		if _, dup := reg.Lookup(name); !dup {
			reg.Register(d)
		}
		last = name
	}
	line := "src:TESTSRC," + chain
	if d, _ := reg.Lookup(last); d.Kind != plugin.Sink {
		line += ",out:TESTSINK"
	}
	text := fmt.Sprintf("[global]\nstack=%s\n%s", line, sections)
	h.Graph, _ = StartGraph(t, text, reg)
	em := <-src.em
	h.rec = em.NewRecord()
	for i, p := range provides {
		h.names[p.Name] = keys.Slot(i)
	}
	h.emitter = em
	return h
}

// runTimeout bounds how long StartGraph's stop waits for the run to end.
const runTimeout = 10 * time.Second

// BuildError parses text as the configuration file "t.conf" and builds it
// with the default registry, as --check does, and returns the build's
// error (nil when it builds). A syntax error fails t.
func BuildError(t testing.TB, text string) error {
	t.Helper()
	f, err := config.Parse("t.conf", []byte(text))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	_, err = stack.Build(f, plugin.Default, nil)
	return err
}

// StartGraph parses text as a configuration file, builds it with reg
// (plugin.Default when nil), starts every instance and runs the graph
// until stop, which t.Cleanup also calls: it cancels the run, waits for
// it (bounded), and stops every instance. Calls after the first do
// nothing. Any error fails t.
func StartGraph(t testing.TB, text string, reg *plugin.Registry) (g *stack.Graph, stop func()) {
	t.Helper()
	if reg == nil {
		reg = plugin.Default
	}
	f, err := config.Parse("test.conf", []byte(text))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	g, err = stack.Build(f, reg, nil)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := g.Start(ctx); err != nil {
		cancel()
		t.Fatalf("start: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("run: %v", err)
				}
			case <-time.After(runTimeout):
				t.Errorf("run did not return within %v of the cancel", runTimeout)
			}
			g.Stop(context.Background())
		})
	}
	t.Cleanup(stop)
	return g, stop
}

// Event sets the source's keys from vals (name → uint64, int, string,
// []byte, bool) and walks the stack once. It returns whether the event
// reached the end of the stack, and the end's values.
func (h *Harness) Event(vals map[string]any) (reached bool, out map[string]string) {
	h.t.Helper()
	for name, v := range vals {
		s, ok := h.names[name]
		if !ok {
			h.t.Fatalf("the test source does not provide %q", name)
		}
		switch v := v.(type) {
		case int:
			h.rec.SetUint(s, uint64(v))
		case uint64:
			h.rec.SetUint(s, v)
		case bool:
			h.rec.SetBool(s, v)
		case string:
			h.rec.SetString(s, v)
		case []byte:
			h.rec.SetBytes(s, v)
		default:
			h.t.Fatalf("unsupported value type %T for %q", v, name)
		}
	}
	if h.sink != nil {
		h.sink.reached = false
	}
	h.emitter.Emit(h.rec)
	if h.sink == nil {
		return true, nil
	}
	out = make(map[string]string, len(h.sink.values))
	for k, v := range h.sink.values {
		out[k] = v
	}
	return h.sink.reached, out
}

// Flush ends a receive batch, as a source does.
func (h *Harness) Flush() { h.emitter.Flush() }

// Reopen delivers a SIGHUP reopen to the stack.
func (h *Harness) Reopen() error { return h.Graph.Reopen() }
