package metrics

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ulogd-go/ulogd/internal/config"
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/stack"
)

// The test plugins: TSRC hands its emitter to the test; TSINK counts what
// it takes, and reports a queue, a counter of its own and whether it is
// up as the test says.

type tsrc struct {
	plugin.Stateless
	em chan plugin.Emitter
}

func (s *tsrc) Run(ctx context.Context, e plugin.Emitter) error {
	s.em <- e
	<-ctx.Done()
	return nil
}

type tsink struct {
	plugin.Stateless
	down    atomic.Pointer[error]
	depth   atomic.Int64
	widgets atomic.Uint64
}

func (s *tsink) Interp(*keys.Record) plugin.Verdict { return plugin.Continue }

func (s *tsink) Metrics() []plugin.Metric {
	return []plugin.Metric{
		{Name: plugin.MetricQueueDepth, Gauge: true, Value: float64(s.depth.Load())},
		{Name: "widgets_total", Help: "Widgets made.", Value: float64(s.widgets.Load())},
	}
}

func (s *tsink) Check() error {
	if p := s.down.Load(); p != nil {
		return *p
	}
	return nil
}

type sinkConfig struct {
	Label string `ulogd:"label"`
}

// fixture is a running TSRC → TSINK graph and its Collector.
type fixture struct {
	g     *stack.Graph
	c     *Collector
	em    plugin.Emitter
	sinks chan *tsink // every TSINK built, in order
	reg   *plugin.Registry
	src   *tsrc
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{reg: plugin.NewRegistry(), src: &tsrc{em: make(chan plugin.Emitter, 1)}, sinks: make(chan *tsink, 8)}
	f.reg.Register(plugin.Define(plugin.Def[plugin.NoConfig]{
		Name: "TSRC", Kind: plugin.Source,
		Keys: func(*plugin.NoConfig) (in, out []keys.Spec, err error) {
			return nil, []keys.Spec{{Name: "x", Type: keys.Uint32}}, nil
		},
		New: func(*plugin.Env, *plugin.NoConfig) (plugin.Instance, error) { return f.src, nil },
	}))
	f.reg.Register(plugin.Define(plugin.Def[sinkConfig]{
		Name: "TSINK", Kind: plugin.Sink,
		NewConfig: func() *sinkConfig { return &sinkConfig{} },
		Options:   map[string]string{"label": "a label"},
		New: func(*plugin.Env, *sinkConfig) (plugin.Instance, error) {
			s := &tsink{}
			f.sinks <- s
			return s, nil
		},
	}))
	f.g = f.build(t, "a")
	ctx, cancel := context.WithCancel(context.Background())
	if err := f.g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { f.g.Run(ctx); close(done) }()
	t.Cleanup(func() { f.g.Stop(context.Background()); cancel(); <-done })
	f.em = <-f.src.em
	f.c = New(f.g, "9.9.9", "2.0.9")
	return f
}

// build builds the graph with the sink's label option.
func (f *fixture) build(t testing.TB, label string) *stack.Graph {
	t.Helper()
	cf, err := config.Parse("t.conf", []byte("[global]\nstack=src1:TSRC,out1:TSINK\n[out1]\nlabel="+label+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	g, err := stack.Build(cf, f.reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// emit walks n events, then flushes (as a source does after a batch).
func (f *fixture) emit(n int) {
	for range n {
		r := f.em.NewRecord()
		r.SetUint(0, 1)
		f.em.Emit(r)
	}
	f.em.Flush()
}

// scrape returns what GET path answers.
func scrape(t testing.TB, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	return rec.Code, rec.Body.String()
}

// value returns the value of the series (name and labels as exported, the
// labels sorted by name), failing the test when it is absent.
func value(t *testing.T, text, series string) float64 {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", series, err)
			}
			return f
		}
	}
	t.Fatalf("no series %s in:\n%s", series, text)
	return 0
}

// promtoolCheck runs `promtool check metrics` on text and fails the test
// on any complaint. It skips when promtool is not installed.
func promtoolCheck(t *testing.T, text string) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package prometheus)")
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestEndpoint: /metrics serves the counters of the stacks (events, losses,
// records written, what the plugin reports), the daemon's and Go's, in a
// text promtool accepts.
func TestEndpoint(t *testing.T) {
	f := newFixture(t)
	sink := <-f.sinks
	f.emit(5)
	f.em.Lost(3)
	sink.depth.Store(2)
	sink.widgets.Store(7)
	before := time.Now()
	h := Handler(f.c, slog.New(slog.DiscardHandler))
	code, text := scrape(t, h, "/metrics")
	if code != 200 {
		t.Fatalf("GET /metrics: %d\n%s", code, text)
	}
	promtoolCheck(t, text)
	for series, want := range map[string]float64{
		`ulogd_events_received_total{plugin="TSRC",plugin_instance="src1"}`:  5,
		`ulogd_events_lost_total{plugin="TSRC",plugin_instance="src1"}`:      3,
		`ulogd_decode_errors_total{plugin="TSRC",plugin_instance="src1"}`:    0,
		`ulogd_events_received_total{plugin="TSINK",plugin_instance="out1"}`: 5,
		`ulogd_records_written_total{plugin="TSINK",plugin_instance="out1"}`: 5,
		`ulogd_records_dropped_total{plugin="TSINK",plugin_instance="out1"}`: 0,
		`ulogd_queue_depth_records{plugin="TSINK",plugin_instance="out1"}`:   2,
		`ulogd_spool_bytes{plugin="TSINK",plugin_instance="out1"}`:           0,
		`ulogd_widgets_total{plugin="TSINK",plugin_instance="out1"}`:         7,
		`ulogd_instance_up{plugin="TSINK",plugin_instance="out1"}`:           1,
		`ulogd_build_info{ulogd2_version="2.0.9",version="9.9.9"}`:           1,
		`ulogd_config_reloads_total{result="applied"}`:                       0,
	} {
		if got := value(t, text, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	last := value(t, text, `ulogd_last_event_timestamp_seconds{plugin="TSRC",plugin_instance="src1"}`)
	if ago := before.Sub(time.Unix(0, int64(last*1e9))); ago < 0 || ago > time.Minute {
		t.Errorf("last event %v before the scrape", ago)
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total", "# TYPE ulogd_events_received_total counter", "# TYPE ulogd_queue_depth_records gauge"} {
		if !strings.Contains(text, name) {
			t.Errorf("no %s in:\n%s", name, text)
		}
	}
}

// TestReady: /ready and /healthz fail while a sink reports itself down or a
// source lost events in the last window, and say which.
func TestReady(t *testing.T) {
	f := newFixture(t)
	sink := <-f.sinks
	now := time.Unix(1e9, 0)
	f.c.now = func() time.Time { return now }
	h := Handler(f.c, slog.New(slog.DiscardHandler))
	for _, path := range []string{"/ready", "/healthz"} {
		if code, body := scrape(t, h, path); code != 200 || body != "ok\n" {
			t.Errorf("GET %s: %d %q", path, code, body)
		}
	}

	down := errors.New("peer 192.0.2.1:9092 unreachable")
	sink.down.Store(&down)
	code, body := scrape(t, h, "/ready")
	if want := "out1 (TSINK) is down: peer 192.0.2.1:9092 unreachable\n"; code != 503 || body != want {
		t.Errorf("sink down: GET /ready: %d %q, want 503 %q", code, body, want)
	}
	if _, text := scrape(t, h, "/metrics"); value(t, text, `ulogd_ready`) != 0 ||
		value(t, text, `ulogd_instance_up{plugin="TSINK",plugin_instance="out1"}`) != 0 {
		t.Errorf("metrics do not show the sink down:\n%s", text)
	}
	sink.down.Store(nil)

	f.em.Lost(4)
	now = now.Add(time.Second)
	code, body = scrape(t, h, "/ready")
	if want := "src1 (TSRC) is overrunning: 4 events lost in the last window\n"; code != 503 || body != want {
		t.Errorf("losing: GET /ready: %d %q, want 503 %q", code, body, want)
	}
	now = now.Add(DefaultOverrunWindow - time.Second)
	f.c.Observe()
	if code, _ := scrape(t, h, "/ready"); code != 503 {
		t.Errorf("within the window: GET /ready: %d", code)
	}
	now = now.Add(time.Second)
	if code, body := scrape(t, h, "/ready"); code != 200 {
		t.Errorf("a window after the loss: GET /ready: %d %q", code, body)
	}
}

// TestReloadKeepsCountersMonotonic: a reload that replaces the sink (its
// options changed) starts a new instance from zero; the exported counters
// go on from the old one's.
func TestReloadKeepsCountersMonotonic(t *testing.T) {
	f := newFixture(t)
	old := <-f.sinks
	f.emit(4)
	old.widgets.Store(10)
	h := Handler(f.c, slog.New(slog.DiscardHandler))
	const written = `ulogd_records_written_total{plugin="TSINK",plugin_instance="out1"}`
	const widgets = `ulogd_widgets_total{plugin="TSINK",plugin_instance="out1"}`
	_, text := scrape(t, h, "/metrics")
	if w := value(t, text, written); w != 4 {
		t.Fatalf("written before the reload: %v", w)
	}

	ng := f.build(t, "b")
	f.c.Reload(func() ([]*stack.Node, bool) {
		res, err := f.g.Reload(context.Background(), ng)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.KeptSources) != 1 || len(res.KeptStacks) != 0 {
			t.Errorf("reload kept sources %v, stacks %v", res.KeptSources, res.KeptStacks)
		}
		return res.Retired, true
	})
	<-f.sinks // the new graph's sink
	f.emit(1)
	_, text = scrape(t, h, "/metrics")
	promtoolCheck(t, text)
	for series, want := range map[string]float64{
		written: 5,
		widgets: 10,
		`ulogd_events_received_total{plugin="TSRC",plugin_instance="src1"}`: 5,
		`ulogd_config_reloads_total{result="applied"}`:                      1,
		`ulogd_config_last_reload_ok`:                                       1,
	} {
		if got := value(t, text, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
}

// TestNames lists what a dashboard may use.
func TestNames(t *testing.T) {
	names := Names()
	for _, want := range []string{"ulogd_events_received_total", "ulogd_events_lost_total", "ulogd_queue_depth_records", "ulogd_records_dropped_total"} {
		found := false
		for _, n := range names {
			found = found || n == want
		}
		if !found {
			t.Errorf("Names() lacks %s: %v", want, names)
		}
	}
}
