package plugintest

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/ulogd-go/ulogd/internal/fileout"
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
)

// lineConfig is the options of LINETEST, a minimal file sink.
type lineConfig struct {
	File string `ulogd:"file"`
	Sync int    `ulogd:"sync"`
}

var lineInputs = []keys.Spec{{Name: "line", Type: keys.String}}

// lineSink writes the "line" key and a newline per event.
type lineSink struct {
	fileout.Sink
	in keys.Slot
}

func (s *lineSink) Interp(r *keys.Record) plugin.Verdict {
	b := append(s.W.Buffer(), r.Bytes(s.in)...)
	if s.W.Commit(append(b, '\n')) != nil {
		return plugin.Fail
	}
	return plugin.Continue
}

func newLineSink(env *plugin.Env, cfg *lineConfig) *lineSink {
	return &lineSink{
		Sink: fileout.NewSink(cfg.File, cfg.Sync != 0, env.Log, fileout.Texts{Open: "can't open LINETEST"}),
		in:   env.In[0],
	}
}

func init() {
	plugin.Register(&plugin.Descriptor{
		Name:      "LINETEST",
		Kind:      plugin.Sink,
		Summary:   "plugintest's own file sink",
		NewConfig: func() any { return &lineConfig{} },
		Keys:      func(any) ([]keys.Spec, []keys.Spec, error) { return lineInputs, nil, nil },
		New: func(env *plugin.Env) (plugin.Instance, error) {
			return newLineSink(env, env.Config.(*lineConfig)), nil
		},
	})
}

func line(s string) map[string]any { return map[string]any{"line": s} }

func TestFileHarness(t *testing.T) {
	h := NewFile(t, "l1:LINETEST", "out.log", "sync=1\n", lineInputs)
	if !strings.HasSuffix(h.File, "/out.log") {
		t.Errorf("File = %q", h.File)
	}
	if got := h.Log(line("a"), line("b")); got != "a\nb\n" {
		t.Errorf("Log = %q", got)
	}
	old, cur := h.ReopenAfterRotate([]map[string]any{line("c")}, []map[string]any{line("d")})
	if old != "a\nb\nc\n" || cur != "d\n" {
		t.Errorf("ReopenAfterRotate = %q, %q", old, cur)
	}
	if got := ReadFile(t, h.File+".1"); got != old {
		t.Errorf("rotated file = %q", got)
	}

	h = NewFile(t, "l1:LINETEST", "out.log", "", lineInputs)
	if got := h.BuffersUntilStop(line("e")); got != "e\n" {
		t.Errorf("BuffersUntilStop = %q", got)
	}
}

// direct starts a LINETEST instance on path, with a record to log.
func direct(t testing.TB, path string) (*lineSink, *keys.Record) {
	in, r := Inputs(lineInputs)
	cfg := &lineConfig{File: path, Sync: 1}
	s := newLineSink(&plugin.Env{Config: cfg, In: in, Log: slog.New(slog.DiscardHandler)}, cfg)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(t.Context()) })
	r.SetString(0, "x")
	return s, r
}

func TestDirectChecks(t *testing.T) {
	got := ReopenFailureKeepsOldFile(t, "out.log", func(path string) (FileSink, *keys.Record) {
		s, r := direct(t, path)
		s.Interp(r)
		return s, r
	}, "can't open LINETEST")
	if got != "x\nx\n" {
		t.Errorf("old file = %q", got)
	}

	s, r := direct(t, t.TempDir()+"/out.log")
	ZeroAllocsPerEvent(t, s, r)

	cfg := &lineConfig{File: MissingDir + "/out.log"}
	StartFails(t, newLineSink(&plugin.Env{Config: cfg, In: []keys.Slot{0}}, cfg), "can't open LINETEST")
}

func TestUpstream(t *testing.T) {
	specs := []keys.Spec{{Name: "a", Type: keys.Uint8}, {Name: "b", Type: keys.String}}
	up, r := Upstream(specs)
	if len(up) != 2 || up[1].Name != "b" || up[1].Slot != 1 || up[1].Instance != "src" {
		t.Errorf("Upstream = %v", up)
	}
	r.SetString(up[1].Slot, "v")
	if string(r.Bytes(1)) != "v" {
		t.Error("record not laid out for specs")
	}
}
