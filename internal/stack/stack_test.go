package stack

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/google/go-cmp/cmp"

	"github.com/ulogd-go/ulogd/internal/config"
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
)

// The test plugins: a source that emits numbers, a filter that doubles a
// key, a filter that stops odd events, and a sink that records lines.

type srcConfig struct {
	Count int    `ulogd:"count"`
	Tag   string `ulogd:"tag"`
}

type testSource struct {
	env   *plugin.Env
	cfg   *srcConfig
	ready chan plugin.Emitter
}

func (s *testSource) Start(context.Context) error { return nil }
func (s *testSource) Stop(context.Context) error  { return nil }
func (s *testSource) Run(ctx context.Context, e plugin.Emitter) error {
	s.ready <- e
	<-ctx.Done()
	return nil
}

type doubler struct{ in, out keys.Slot }

func (d *doubler) Start(context.Context) error { return nil }
func (d *doubler) Stop(context.Context) error  { return nil }
func (d *doubler) Interp(r *keys.Record) plugin.Verdict {
	if r.Valid(d.in) {
		r.SetUint(d.out, r.Uint(d.in)*2)
	}
	return plugin.Continue
}

type oddStop struct{ in keys.Slot }

func (o *oddStop) Start(context.Context) error { return nil }
func (o *oddStop) Stop(context.Context) error  { return nil }
func (o *oddStop) Interp(r *keys.Record) plugin.Verdict {
	switch r.Uint(o.in) % 4 {
	case 1:
		return plugin.Stop
	case 3:
		return plugin.Fail
	}
	return plugin.Continue
}

type pickyConfig struct {
	Level int `ulogd:"level"`
}

type sinkConfig struct {
	File string `ulogd:"file,mandatory"`
}

type recorder struct {
	env      *plugin.Env
	mu       sync.Mutex
	lines    []string
	flushes  int
	reopened int
	started  bool
}

func (s *recorder) Start(context.Context) error { s.started = true; return nil }
func (s *recorder) Stop(context.Context) error  { s.started = false; return nil }
func (s *recorder) Flush() error                { s.flushes++; return nil }
func (s *recorder) Reopen() error               { s.reopened++; return nil }
func (s *recorder) Interp(r *keys.Record) plugin.Verdict {
	var b []byte
	for _, u := range s.env.Upstream {
		if v, ok := r.AppendValue(nil, u.Slot); ok {
			b = append(b, u.Name...)
			b = append(b, '=')
			b = append(append(b, v...), ' ')
		}
	}
	s.mu.Lock()
	s.lines = append(s.lines, strings.TrimSpace(string(b)))
	s.mu.Unlock()
	return plugin.Continue
}

type failStart struct{ recorder }

func (f *failStart) Start(context.Context) error { return errors.New("boom") }

type testReg struct {
	*plugin.Registry
	sources []*testSource
	sinks   []*recorder
}

func newTestRegistry() *testReg {
	tr := &testReg{Registry: plugin.NewRegistry()}
	tr.Register(&plugin.Descriptor{
		Name: "SRC", Kind: plugin.Source, Output: plugin.DTFlow,
		NewConfig: func() any { return &srcConfig{Count: 1} },
		Keys: func(any) ([]keys.Spec, []keys.Spec, error) {
			return nil, []keys.Spec{{Name: "n", Type: keys.Uint32}, {Name: "name", Type: keys.String}}, nil
		},
		New: func(env *plugin.Env) (plugin.Instance, error) {
			s := &testSource{env: env, cfg: env.Config.(*srcConfig), ready: make(chan plugin.Emitter, 1)}
			tr.sources = append(tr.sources, s)
			return s, nil
		},
	})
	tr.Register(&plugin.Descriptor{
		Name: "OTHERSRC", Kind: plugin.Source,
		New: func(env *plugin.Env) (plugin.Instance, error) {
			return &testSource{env: env, ready: make(chan plugin.Emitter, 1)}, nil
		},
	})
	tr.Register(&plugin.Descriptor{
		Name: "DOUBLE", Kind: plugin.Filter, Input: plugin.DTFlow, Output: plugin.DTFlow,
		Keys: func(any) ([]keys.Spec, []keys.Spec, error) {
			return []keys.Spec{{Name: "n", Type: keys.Uint16}}, []keys.Spec{{Name: "n2", Type: keys.Uint64}}, nil
		},
		New: func(env *plugin.Env) (plugin.Instance, error) { return &doubler{env.In[0], env.Out[0]}, nil },
	})
	tr.Register(&plugin.Descriptor{
		Name: "ODDSTOP", Kind: plugin.Filter,
		Keys: func(any) ([]keys.Spec, []keys.Spec, error) {
			return []keys.Spec{{Name: "n", Type: keys.Uint32}, {Name: "missing.ok", Type: keys.String, Flags: keys.Optional}}, nil, nil
		},
		New: func(env *plugin.Env) (plugin.Instance, error) { return &oddStop{env.In[0]}, nil },
	})
	tr.Register(&plugin.Descriptor{
		Name: "NEEDSTR", Kind: plugin.Filter,
		Keys: func(any) ([]keys.Spec, []keys.Spec, error) {
			return []keys.Spec{{Name: "n", Type: keys.String}, {Name: "n2.str", Type: keys.String}}, nil, nil
		},
		New: func(env *plugin.Env) (plugin.Instance, error) { return &oddStop{env.In[0]}, nil },
	})
	tr.Register(&plugin.Descriptor{
		Name: "REC", Kind: plugin.Sink, Input: plugin.DTFlow, Wildcard: true,
		NewConfig: func() any { return &sinkConfig{} },
		Resources: func(cfg any) []string { return []string{"file:" + cfg.(*sinkConfig).File} },
		New: func(env *plugin.Env) (plugin.Instance, error) {
			s := &recorder{env: env}
			tr.sinks = append(tr.sinks, s)
			return s, nil
		},
	})
	tr.Register(&plugin.Descriptor{
		Name: "PICKY", Kind: plugin.Sink,
		NewConfig: func() any { return &pickyConfig{} },
		Keys: func(c any) ([]keys.Spec, []keys.Spec, error) {
			lv := c.(*pickyConfig).Level
			return nil, nil, errors.Join(config.OptionErrorf("level", "level=%d: too high", lv),
				config.OptionErrorf("other", "other is wrong"), errors.New("a check of no option"))
		},
		New: func(env *plugin.Env) (plugin.Instance, error) { return &recorder{env: env}, nil },
	})
	tr.Register(&plugin.Descriptor{
		Name: "BADSTART", Kind: plugin.Sink,
		New: func(env *plugin.Env) (plugin.Instance, error) { return &failStart{}, nil },
	})
	return tr
}

func build(t *testing.T, reg *testReg, conf string) (*Graph, error) {
	t.Helper()
	f, err := config.Parse("test.conf", []byte(conf))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return Build(f, reg.Registry, nil)
}

func TestBuildErrors(t *testing.T) {
	tests := []struct {
		name string
		conf string
		want []string // substrings, each must appear in the joined error
		once []string // substrings that must appear exactly once
		none []string // substrings that must not appear
	}{
		{
			name: "unknown plugin with suggestion",
			conf: "[global]\nstack=s1:SRC,r1:RECC\n[r1]\nfile=x\n",
			want: []string{"test.conf:2: stack 1: can't find requested plugin RECC (did you mean REC?)"},
		},
		{
			name: "syntax",
			conf: "[global]\nstack=s1:SRC,r1\n",
			want: []string{"test.conf:2: stack 1: syntax error in \"r1\": expected id:PLUGIN"},
		},
		{
			name: "first not a source, last not a sink",
			conf: "[global]\n\nstack=d:DOUBLE,s1:SRC\n",
			want: []string{
				"test.conf:3: stack 1, d:DOUBLE: first plugin in stack has to be source plugin (DOUBLE is a filter)",
				"test.conf:3: stack 1, s1:SRC: last plugin in stack has to be output plugin (SRC is a source)",
			},
		},
		{
			name: "source in the middle",
			conf: "[global]\nstack=s1:SRC,s2:SRC,r1:REC\n[r1]\nfile=x\n",
			want: []string{"stack 1, s2:SRC: a source plugin can only stand first of a stack"},
		},
		{
			name: "missing key with provider hint",
			conf: "[global]\nstack=s1:SRC,x:NEEDSTR,r1:REC\n[r1]\nfile=x\n",
			want: []string{
				"test.conf:2: stack 1, x:NEEDSTR: key `n' is string, but s1 (SRC) provides unsigned int 32",
				"test.conf:2: stack 1, x:NEEDSTR: cannot find key `n2.str' in stack",
			},
		},
		{
			name: "missing key names the plugins producing it",
			conf: "[global]\nstack=s1:OTHERSRC,o:ODDSTOP,r1:REC\n[r1]\nfile=x\n",
			want: []string{"cannot find key `n' in stack (it is produced by SRC)"},
		},
		{
			name: "one id, two source plugins",
			conf: "[global]\nstack=s1:SRC,r1:REC\nstack=s1:OTHERSRC,r2:REC\n[r1]\nfile=a\n[r2]\nfile=b\n",
			want: []string{"test.conf:3: stack 2, s1:OTHERSRC: instance id \"s1\" already names plugin SRC (line 2); one id can name only one plugin"},
		},
		{
			name: "one id, two filter plugins in two stacks",
			conf: "[global]\nstack=s1:SRC,x:DOUBLE,r1:REC\nstack=s1:SRC,x:NEEDSTR,r2:REC\n[r1]\nfile=a\n[r2]\nfile=b\n",
			want: []string{"test.conf:3: stack 2, x:NEEDSTR: instance id \"x\" already names plugin DOUBLE (line 2); one id can name only one plugin"},
			none: []string{"cannot find key", "provides"},
		},
		{
			name: "one id twice in a stack",
			conf: "[global]\nstack=s1:SRC,d:DOUBLE,d:DOUBLE,r1:REC\n[r1]\nfile=a\n",
			want: []string{"test.conf:2: stack 1, d:DOUBLE: instance id \"d\" appears twice in this stack (also as d:DOUBLE)"},
		},
		{
			name: "one id for two plugins of a stack",
			conf: "[global]\nstack=s1:SRC,d:DOUBLE,d:ODDSTOP,r1:REC\n[r1]\nfile=a\n",
			want: []string{"test.conf:2: stack 1, d:ODDSTOP: instance id \"d\" appears twice in this stack (also as d:DOUBLE)"},
			none: []string{"cannot find key"},
		},
		{
			name: "a trailing comma is reported first, alone",
			conf: "[global]\nstack=s1:SRC,x:NEEDSTR,r1:REC,\n",
			want: []string{"test.conf:2: stack 1: syntax error: empty element 4 of 4 (a comma too many?)"},
			none: []string{"cannot find key", "mandatory option", "can only stand"},
		},
		{
			name: "a ulogd2 plugin ulogd-go does not have",
			conf: "[global]\nstack=s1:SRC,p:PGSQL\n",
			want: []string{"test.conf:2: stack 1: ulogd-go does not have the ulogd2 plugin PGSQL yet"},
			none: []string{"did you mean"},
		},
		{
			name: "an unknown plugin with nothing near lists the plugins",
			conf: "[global]\nstack=s1:SRC,q:QQQQQQ\n",
			want: []string{"stack 1: can't find requested plugin QQQQQQ (the plugins are BADSTART, DOUBLE, NEEDSTR,"},
		},
		{
			name: "a plugin's option error at the option's line",
			conf: "[global]\nstack=s1:SRC,p:PICKY\n[p]\n\nlevel=9\n",
			want: []string{
				"test.conf:5: stack 1, p:PICKY: level=9: too high",
				"test.conf:2: stack 1, p:PICKY: other is wrong", // not in the section
				"test.conf:2: stack 1, p:PICKY: a check of no option",
			},
		},
		{
			name: "resource conflict",
			conf: "[global]\nstack=s1:SRC,r1:REC\nstack=s1:SRC,r2:REC\n[r1]\nfile=same\n[r2]\nfile=same\n",
			want: []string{"test.conf:3: stack 2, r2:REC: file:same is already used by instance \"r1\" (line 2)"},
		},
		{
			name: "option errors from several instances in one pass",
			conf: "[global]\nstack=s1:SRC,r1:REC\nstack=s2:SRC,r2:REC\n[s1]\ncount=12x\n[s2]\ncuont=1\n[r1]\n[r2]\nfile=y\n",
			want: []string{
				"test.conf:5: stack 1, s1:SRC: integer has invalid format",
				"test.conf:8: stack 1, r1:REC: mandatory option \"file\" not found in section [r1]",
				"test.conf:7: stack 2, s2:SRC: unknown option \"cuont\"",
			},
		},
		{
			name: "a shared source's bad section is reported once; the other stacks' errors still are",
			conf: "[global]\nstack=s1:SRC,r1:REC\nstack=s1:SRC,r2:REC\n[s1]\ncount=12x\n[r1]\nfile=a\n[r2]\n",
			want: []string{
				"test.conf:5: stack 1, s1:SRC: integer has invalid format",
				"test.conf:8: stack 2, r2:REC: mandatory option \"file\" not found in section [r2]",
			},
			once: []string{"s1:SRC: integer has invalid format"},
		},
		{
			name: "no stack",
			conf: "[global]\nloglevel=5\n",
			want: []string{"test.conf:1: not even a single working plugin stack"},
		},
		{
			name: "bad global",
			conf: "[global]\nloglevel=4\nlogfil=x\nplugin=/usr/lib/ulogd/ulogd_output_NOPE.so\nstack=s1:SRC,r1:REC\n[r1]\nfile=x\n",
			want: []string{
				"test.conf:2: loglevel 4 is not one of",
				"test.conf:3: unknown option \"logfil\" in section [global] (did you mean \"logfile\"?)",
				"test.conf:4: plugin /usr/lib/ulogd/ulogd_output_NOPE.so: can't find requested plugin NOPE",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := build(t, newTestRegistry(), tt.conf)
			if err == nil {
				t.Fatal("Build succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q; got:\n%v", w, err)
				}
			}
			for _, w := range tt.none {
				if strings.Contains(err.Error(), w) {
					t.Errorf("error has %q; got:\n%v", w, err)
				}
			}
			for _, w := range tt.once {
				if n := strings.Count(err.Error(), w); n != 1 {
					t.Errorf("%q appears %d times, want once; got:\n%v", w, n, err)
				}
			}
		})
	}
}

func TestPluginLinesOfUlogd2Plugins(t *testing.T) {
	g, err := build(t, newTestRegistry(), "[global]\n"+
		"plugin=\"/usr/lib/x86_64-linux-gnu/ulogd/ulogd_output_PGSQL.so\"\n"+
		"plugin=\"/usr/lib/x86_64-linux-gnu/ulogd/ulogd_inpflow_SRC.so\"\n"+
		"stack=s1:SRC,r1:REC\n[s1]\n[r1]\nfile=x\n")
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	var warnings []string
	for _, w := range g.Warnings {
		warnings = append(warnings, w.Error())
	}
	want := []string{"test.conf:2: plugin /usr/lib/x86_64-linux-gnu/ulogd/ulogd_output_PGSQL.so: " +
		"ulogd-go does not have the ulogd2 plugin PGSQL yet; line ignored"}
	if diff := cmp.Diff(want, warnings); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

func TestLookupPlugin(t *testing.T) {
	reg := newTestRegistry()
	if d, err := LookupPlugin(reg.Registry, "SRC"); err != nil || d.Name != "SRC" {
		t.Errorf("LookupPlugin(SRC) = %v, %v", d, err)
	}
	for name, want := range map[string]string{
		"NFACCT": "ulogd-go does not have the ulogd2 plugin NFACCT yet",
		"rec":    "can't find requested plugin rec (did you mean REC?)",
		"RECC":   "can't find requested plugin RECC (did you mean REC?)",
	} {
		if _, err := LookupPlugin(reg.Registry, name); err == nil || err.Error() != want {
			t.Errorf("LookupPlugin(%s) = %v, want %q", name, err, want)
		}
	}
}

const twoStacks = `[global]
plugin="/usr/lib/x86_64-linux-gnu/ulogd/ulogd_inpflow_SRC.so"
stack=s1:SRC,d1:DOUBLE,o1:ODDSTOP,r1:REC
stack=s1:SRC,r2:REC

[s1]
count=3
[r1]
file="one"
[r2]
file="two"
`

func TestBindingAndExplain(t *testing.T) {
	reg := newTestRegistry()
	g, err := build(t, reg, twoStacks)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Sources) != 1 || len(g.Stacks) != 2 || len(reg.sources) != 1 {
		t.Fatalf("want 1 shared source and 2 stacks, got %d sources, %d stacks, %d source instances",
			len(g.Sources), len(g.Stacks), len(reg.sources))
	}
	st := g.Stacks[0]
	d1, o1 := st.Instances[1], st.Instances[2]
	if diff := cmp.Diff([]keys.Slot{0}, d1.InSlots); diff != "" {
		t.Errorf("DOUBLE inputs (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]keys.Slot{0, keys.NoSlot}, o1.InSlots); diff != "" {
		t.Errorf("ODDSTOP inputs (-want +got):\n%s", diff)
	}
	var up []string
	for _, u := range st.Instances[3].Upstream {
		up = append(up, u.Name+"@"+u.Instance)
	}
	if diff := cmp.Diff([]string{"n@s1", "name@s1", "n2@d1"}, up); diff != "" {
		t.Errorf("wildcard upstream (-want +got):\n%s", diff)
	}
	var buf bytes.Buffer
	g.Explain(&buf)
	for _, want := range []string{
		"stack 1 (test.conf:3): s1:SRC,d1:DOUBLE,o1:ODDSTOP,r1:REC",
		"s1:SRC (source, shared by 2 stacks)",
		"in  n                        unsigned int 16  <- s1 [slot 0]",
		"in  missing.ok               string           unbound (optional)",
		"out n2                       unsigned int 64  [slot 2]",
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("explain lacks %q:\n%s", want, buf.String())
		}
	}
}

func TestRunWalkVerdictsAndSharing(t *testing.T) {
	reg := newTestRegistry()
	g, err := build(t, reg, twoStacks)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for _, s := range reg.sinks {
		if !s.started {
			t.Fatal("sink not started")
		}
	}
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	em := <-reg.sources[0].ready
	rec := em.NewRecord()
	for i := range 5 {
		rec.SetUint(0, uint64(i))
		if i == 0 {
			rec.SetString(1, "first") // only the first event has a name
		}
		em.Emit(rec)
	}
	em.Flush()
	em.Lost(7)
	if err := g.Reopen(); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	g.Stop(context.Background())

	// Stack 1 drops n%4==1 (Stop) and n%4==3 (Fail): 0, 2, 4 pass.
	want1 := []string{"n=0 name=first n2=0", "n=2 n2=4", "n=4 n2=8"}
	want2 := []string{"n=0 name=first", "n=1", "n=2", "n=3", "n=4"}
	if diff := cmp.Diff(want1, reg.sinks[0].lines); diff != "" {
		t.Errorf("stack 1 (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want2, reg.sinks[1].lines); diff != "" {
		t.Errorf("stack 2 (-want +got):\n%s", diff)
	}
	o1 := g.Stacks[0].Instances[2]
	if o1.stats.Stopped.Load() != 1 || o1.stats.Failed.Load() != 1 || o1.stats.Received.Load() != 5 {
		t.Errorf("ODDSTOP counters: received %d stopped %d failed %d, want 5 1 1",
			o1.stats.Received.Load(), o1.stats.Stopped.Load(), o1.stats.Failed.Load())
	}
	src := g.Sources[0]
	if src.stats.Received.Load() != 5 || src.stats.Lost.Load() != 7 {
		t.Errorf("source counters: received %d lost %d, want 5 7", src.stats.Received.Load(), src.stats.Lost.Load())
	}
	for i, s := range reg.sinks {
		if s.flushes < 2 || s.reopened != 1 || s.started {
			t.Errorf("sink %d: flushes %d (want ≥2: batch end and stop), reopened %d, still started %v",
				i, s.flushes, s.reopened, s.started)
		}
	}
}

func TestStartFailureStopsStarted(t *testing.T) {
	reg := newTestRegistry()
	g, err := build(t, reg, "[global]\nstack=s1:SRC,r1:REC\nstack=s1:SRC,b:BADSTART\n[r1]\nfile=x\n")
	if err != nil {
		t.Fatal(err)
	}
	err = g.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "error starting `b' (BADSTART): boom") {
		t.Fatalf("Start error = %v", err)
	}
	if reg.sinks[0].started {
		t.Error("the sink started before the failure was not stopped again")
	}
}

// lateSource keeps walking after Stop, as a netlink source does with the
// rest of a receive batch it read before its socket was closed.
type lateSource struct {
	stopped, release chan struct{}
	ready            chan plugin.Emitter
}

func (s *lateSource) Start(context.Context) error { return nil }
func (s *lateSource) Stop(context.Context) error  { close(s.stopped); return nil }
func (s *lateSource) Run(ctx context.Context, e plugin.Emitter) error {
	s.ready <- e
	<-s.stopped
	<-s.release
	rec := e.NewRecord()
	rec.SetUint(0, 42)
	e.Emit(rec)
	return nil
}

func TestStopWaitsForSourceWalks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := newTestRegistry()
		src := &lateSource{stopped: make(chan struct{}), release: make(chan struct{}), ready: make(chan plugin.Emitter, 1)}
		reg.Register(&plugin.Descriptor{
			Name: "LATE", Kind: plugin.Source,
			Keys: func(any) ([]keys.Spec, []keys.Spec, error) {
				return nil, []keys.Spec{{Name: "n", Type: keys.Uint32}}, nil
			},
			New: func(*plugin.Env) (plugin.Instance, error) { return src, nil },
		})
		g, err := build(t, reg, "[global]\nstack=l:LATE,r1:REC\n[r1]\nfile=x\n")
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if err := g.Start(ctx); err != nil {
			t.Fatal(err)
		}
		runErr := make(chan error, 1)
		go func() { runErr <- g.Run(ctx) }()
		<-src.ready
		stopped := make(chan struct{})
		go func() { g.Stop(ctx); close(stopped) }()
		synctest.Wait()
		sink := reg.sinks[0]
		if !sink.started {
			t.Error("the sink was stopped while its source was still walking")
		}
		close(src.release)
		<-stopped
		if err := <-runErr; err != nil {
			t.Fatal(err)
		}
		if sink.started {
			t.Error("the sink was not stopped")
		}
		if diff := cmp.Diff([]string{"n=42"}, sink.lines); diff != "" {
			t.Errorf("sink lines (-want +got):\n%s", diff)
		}
	})
}

func TestStopBeforeRun(t *testing.T) {
	reg := newTestRegistry()
	g, err := build(t, reg, "[global]\nstack=s1:SRC,r1:REC\n[r1]\nfile=x\n")
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	g.Stop(context.Background()) // Run never called: must not wait
	if err := g.Run(context.Background()); err != nil {
		t.Fatalf("Run after Stop = %v, want nil at once", err)
	}
	if reg.sinks[0].started {
		t.Error("sink still started")
	}
}
