// Package metrics exports the daemon's counters in Prometheus' text format
// and answers the readiness and health probes.
//
// Nothing here runs per event: the Collector reads the counters the stacks
// keep anyway (atomics) when Prometheus scrapes, plus what instances report
// through plugin.Metricer. Every series has the labels plugin_instance (the
// id of the stack line; Prometheus reserves "instance" for the target) and
// plugin. Counters stay monotonic across SIGHUP (nothing is reset) and
// across a reload: the final values of the instances a reload stops are
// kept and added to the new instances of the same id and plugin.
package metrics

import (
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/stack"
)

// Namespace prefixes every metric the daemon defines.
const Namespace = "ulogd"

// Names of the metrics the daemon derives from the stacks' own counters,
// beside the plugin.Metric* names.
const (
	EventsReceived = "events_received_total"
	EventsLost     = "events_lost_total"
	EventsStopped  = "events_stopped_total"
	EventsFailed   = "events_failed_total"
	LastEvent      = "last_event_timestamp_seconds"
)

// family is what the daemon knows of a metric name.
type family struct {
	help  string
	gauge bool
}

// families are the well-known metrics, with their help texts.
var families = map[string]family{
	EventsReceived:            {help: "Events that reached the instance; for a source, the events it read from the kernel or its socket."},
	EventsLost:                {help: "Events a source knows were lost before it could read them: socket overruns (the kernel's drop counter) and NFLOG sequence gaps."},
	EventsStopped:             {help: "Events a filter ended without error (filtered out)."},
	EventsFailed:              {help: "Events whose walk failed at this filter."},
	LastEvent:                 {help: "When the instance last received an event, in seconds since the epoch (to within a receive batch or a second); 0 before the first.", gauge: true},
	plugin.MetricDecodeErrors: {help: "Messages a source read but could not decode."},
	plugin.MetricWritten:      {help: "Records a sink wrote to its file or peer."},
	plugin.MetricDropped:      {help: "Records a sink accepted and then discarded (full queue, lost connection, stop)."},
	plugin.MetricWriteErrors:  {help: "Records a sink failed to take (its output failed)."},
	plugin.MetricReconnects:   {help: "Times a sink connected to its peer again."},
	plugin.MetricQueueDepth:   {help: "Records waiting in a sink's queue.", gauge: true},
	plugin.MetricQueueBytes:   {help: "Bytes waiting in a sink's queue.", gauge: true},
	plugin.MetricSpoolBytes:   {help: "Bytes in a sink's disk spool.", gauge: true},
	plugin.MetricSpoolRecords: {help: "Records in a sink's disk spool.", gauge: true},
	plugin.MetricSocketBuffer: {help: "The receive buffer size of a source's netlink socket (SO_RCVBUF), in bytes.", gauge: true},
	"config_reloads_total":    {help: "Reloads of the configuration (the reload signal), by result."},
	"config_last_reload_ok":   {help: "Whether the last reload of the configuration was applied (1) or refused (0); 1 before any.", gauge: true},
	"build_info":              {help: "The version of ulogd-go and of the ulogd2 it follows; always 1.", gauge: true},
	"ready":                   {help: "Whether the daemon is ready: 1 unless a sink is down or a source is overrunning (as /ready).", gauge: true},
	"instance_up":             {help: "Whether the instance works (1), or reports itself down (0), as its plugin checks it.", gauge: true},
	"source_overrunning":      {help: "Whether the source lost events in the last window (1) or not (0), as /ready judges it.", gauge: true},
	"overrun_window_seconds":  {help: "How long after a loss /ready reports a source as overrunning.", gauge: true},
}

// Names returns the name of every metric the daemon can export (with the
// ulogd_ prefix), sorted: what a dashboard may reference.
func Names() []string {
	var out []string
	for n := range families {
		out = append(out, Namespace+"_"+n)
	}
	sort.Strings(out)
	return out
}

// key names the series of one instance.
type key struct{ id, plugin string }

// Collector is the prometheus.Collector of a running graph.
type Collector struct {
	mu     sync.Mutex
	g      *stack.Graph
	base   map[key]map[string]float64 // final counters of retired instances
	prev   map[key]map[string]float64 // counters as last exported
	health health

	version, ulogd2 string
	reloads         [2]uint64 // refused, applied
	lastReloadOK    bool
	now             func() time.Time
	descs           map[string]*prometheus.Desc // by name and help
}

// desc returns the Desc of an instance series, made once per name and
// help.
func (c *Collector) desc(name, help string) *prometheus.Desc {
	k := name + "\x00" + help
	d := c.descs[k]
	if d == nil {
		d = prometheus.NewDesc(Namespace+"_"+name, help, []string{"plugin_instance", "plugin"}, nil)
		c.descs[k] = d
	}
	return d
}

// New returns the Collector of g. version and ulogd2Version label
// ulogd_build_info.
func New(g *stack.Graph, version, ulogd2Version string) *Collector {
	c := &Collector{g: g, base: map[key]map[string]float64{}, prev: map[key]map[string]float64{}, version: version, ulogd2: ulogd2Version,
		lastReloadOK: true, now: time.Now, descs: map[string]*prometheus.Desc{}}
	c.health.init(DefaultOverrunWindow)
	return c
}

// Describe sends nothing: the Collector is unchecked, its series depend on
// the configuration, which a reload changes.
func (c *Collector) Describe(chan<- *prometheus.Desc) {}

// sample is one scrape's values of one instance.
type sample struct {
	key  key
	kind plugin.Kind
	vals map[string]float64
	help map[string]family // names the plugin reported that the daemon does not know
}

// read returns the values of every instance of g, the instances of one id
// and plugin summed (a filter or sink id in several stacks is one instance
// per stack), in a stable order.
func read(g *stack.Graph) []*sample {
	byKey := map[key]*sample{}
	var order []key
	for _, in := range g.Instances() {
		k := key{in.ID, in.Desc.Name}
		s := byKey[k]
		if s == nil {
			s = &sample{key: k, kind: in.Desc.Kind, vals: map[string]float64{}, help: map[string]family{}}
			byKey[k] = s
			order = append(order, k)
		}
		for name, v := range values(in, s.help) {
			if name == LastEvent {
				s.vals[name] = max(s.vals[name], v)
				continue
			}
			s.vals[name] += v
		}
	}
	out := make([]*sample, len(order))
	for i, k := range order {
		out[i] = byKey[k]
	}
	return out
}

// values are the metrics of one instance: those the daemon derives from
// its counters, replaced or completed by what the plugin reports. help
// receives the families of names the daemon does not know.
func values(in *stack.Node, help map[string]family) map[string]float64 {
	st := in.Stats()
	v := map[string]float64{EventsReceived: float64(st.Received.Load())}
	if t := st.LastEvent.Load(); t != 0 {
		v[LastEvent] = float64(t) / 1e9
	} else {
		v[LastEvent] = 0
	}
	switch in.Desc.Kind {
	case plugin.Source:
		v[EventsLost] = float64(st.Lost.Load())
		v[plugin.MetricDecodeErrors] = 0
	case plugin.Filter:
		v[EventsStopped] = float64(st.Stopped.Load())
		v[EventsFailed] = float64(st.Failed.Load())
	case plugin.Sink:
		// Received first: a record is received before it fails or is
		// dropped, so the difference never exceeds what was written.
		received := st.Received.Load()
		failed, stopped := st.Failed.Load(), st.Stopped.Load()
		var dropped uint64
		if d, ok := in.Inst.(plugin.Dropper); ok {
			dropped = d.Dropped()
		}
		if w, ok := in.Inst.(plugin.WriteCounter); ok {
			v[plugin.MetricWritten] = float64(w.Written())
		} else {
			v[plugin.MetricWritten] = max(0, float64(received)-float64(stopped)-float64(failed)-float64(dropped))
		}
		v[plugin.MetricDropped] = float64(dropped)
		v[plugin.MetricWriteErrors] = float64(st.Failed.Load())
		v[plugin.MetricReconnects] = 0
		v[plugin.MetricQueueDepth] = 0
		v[plugin.MetricQueueBytes] = 0
		v[plugin.MetricSpoolBytes] = 0
	}
	if m, ok := in.Inst.(plugin.Metricer); ok {
		for _, x := range m.Metrics() {
			v[x.Name] = x.Value
			if _, known := families[x.Name]; !known {
				help[x.Name] = family{help: x.Help, gauge: x.Gauge}
			}
		}
	}
	return v
}

// familyOf returns what is known of a name: the daemon's, else what the
// plugin said (its help, or a generic one).
func familyOf(name string, s *sample) family {
	if f, ok := families[name]; ok {
		return f
	}
	f := s.help[name]
	if f.help == "" {
		f.help = "Reported by the plugin."
	}
	return f
}

// Collect reads every instance's counters.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	samples := read(c.g)
	now := c.now()
	problems := c.health.check(samples, c.g, now)
	helps := map[string]string{} // one help per name per scrape
	for _, s := range samples {
		names := make([]string, 0, len(s.vals))
		for n := range s.vals {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, name := range names {
			f := familyOf(name, s)
			v := s.vals[name]
			vt := prometheus.GaugeValue
			if !f.gauge {
				vt = prometheus.CounterValue
				v = c.monotonic(s.key, name, v+c.base[s.key][name])
			}
			if h, ok := helps[name]; ok {
				f.help = h
			} else {
				helps[name] = f.help
			}
			ch <- prometheus.MustNewConstMetric(c.desc(name, f.help), vt, v, s.key.id, s.key.plugin)
		}
		c.instanceGauges(ch, s, problems)
	}
	c.daemonMetrics(ch, problems.len() == 0)
}

// monotonic returns v, or the value last exported if v is below it: the
// counters an export derives (records written: received less failed and
// dropped) are read one after the other while events flow, and must not
// seem to go backwards.
func (c *Collector) monotonic(k key, name string, v float64) float64 {
	p := c.prev[k]
	if p == nil {
		p = map[string]float64{}
		c.prev[k] = p
	}
	if v < p[name] {
		return p[name]
	}
	p[name] = v
	return v
}

// instanceGauges sends instance_up for every instance and
// source_overrunning for sources.
func (c *Collector) instanceGauges(ch chan<- prometheus.Metric, s *sample, p problems) {
	up := 1.0
	if _, down := p.down[s.key]; down {
		up = 0
	}
	ch <- prometheus.MustNewConstMetric(c.desc("instance_up", families["instance_up"].help), prometheus.GaugeValue, up, s.key.id, s.key.plugin)
	if s.kind == plugin.Source {
		over := 0.0
		if _, o := p.overrun[s.key]; o {
			over = 1
		}
		ch <- prometheus.MustNewConstMetric(c.desc("source_overrunning", families["source_overrunning"].help), prometheus.GaugeValue, over, s.key.id, s.key.plugin)
	}
}

// daemonMetrics sends the series that are the daemon's own.
func (c *Collector) daemonMetrics(ch chan<- prometheus.Metric, ready bool) {
	gauge := func(name string, v float64) {
		ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(Namespace+"_"+name, families[name].help, nil, nil), prometheus.GaugeValue, v)
	}
	ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(Namespace+"_build_info", families["build_info"].help, []string{"version", "ulogd2_version"}, nil),
		prometheus.GaugeValue, 1, c.version, c.ulogd2)
	rd := prometheus.NewDesc(Namespace+"_config_reloads_total", families["config_reloads_total"].help, []string{"result"}, nil)
	ch <- prometheus.MustNewConstMetric(rd, prometheus.CounterValue, float64(c.reloads[1]), "applied")
	ch <- prometheus.MustNewConstMetric(rd, prometheus.CounterValue, float64(c.reloads[0]), "refused")
	gauge("config_last_reload_ok", b2f(c.lastReloadOK))
	gauge("ready", b2f(ready))
	gauge("overrun_window_seconds", c.health.window.Seconds())
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Reload runs apply, which reloads the graph and returns the instances it
// retired (stopped, their counters final), with no scrape in between: the
// retired instances' counters are added to what the instances of the same
// id and plugin report from then on, so that no counter goes backwards.
// applied says whether the new configuration took effect (counted in
// ulogd_config_reloads_total).
func (c *Collector) Reload(apply func() (retired []*stack.Node, applied bool)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	retired, applied := apply()
	for _, in := range retired {
		k := key{in.ID, in.Desc.Name}
		b := c.base[k]
		if b == nil {
			b = map[string]float64{}
			c.base[k] = b
		}
		help := map[string]family{}
		for name, v := range values(in, help) {
			if f, ok := families[name]; (ok && f.gauge) || help[name].gauge {
				continue
			}
			b[name] += v
		}
	}
	c.lastReloadOK = applied
	c.reloads[b2i(applied)]++
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Problems returns what makes the daemon not ready, one line each: sinks
// that are down, sources that overran in the last window. Empty means
// ready.
func (c *Collector) Problems() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.health.check(read(c.g), c.g, c.now())
	return p.lines()
}

// Observe samples the sources' loss counters (the server calls it every
// second), so that a loss between two probes is seen.
func (c *Collector) Observe() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.health.check(read(c.g), c.g, c.now())
}

// String is for debugging.
func (k key) String() string { return fmt.Sprintf("%s (%s)", k.id, k.plugin) }
