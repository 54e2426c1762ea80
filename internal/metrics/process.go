package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// processCollector exports the standard process_* metrics of client_golang's
// process collector that matter for a daemon (CPU, memory, descriptors,
// start time) from /proc/self/stat alone: the library's collector also
// reads /proc/stat (for the boot time) and the namespace's
// /proc/self/net/netstat at every scrape, which was 40 % of a scrape's
// CPU; the start time is read once here.
type processCollector struct {
	proc                          procfs.Proc
	start                         float64
	cpu, rss, vsz, fds, maxFDs, t *prometheus.Desc
}

func newProcessCollector() prometheus.Collector {
	c := &processCollector{
		cpu:    prometheus.NewDesc("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", nil, nil),
		rss:    prometheus.NewDesc("process_resident_memory_bytes", "Resident memory size in bytes.", nil, nil),
		vsz:    prometheus.NewDesc("process_virtual_memory_bytes", "Virtual memory size in bytes.", nil, nil),
		fds:    prometheus.NewDesc("process_open_fds", "Number of open file descriptors.", nil, nil),
		maxFDs: prometheus.NewDesc("process_max_fds", "Maximum number of open file descriptors.", nil, nil),
		t:      prometheus.NewDesc("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", nil, nil),
	}
	if p, err := procfs.Self(); err == nil {
		c.proc = p
		if st, err := p.Stat(); err == nil {
			c.start, _ = st.StartTime()
		}
	}
	return c
}

func (c *processCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.cpu, c.rss, c.vsz, c.fds, c.maxFDs, c.t} {
		ch <- d
	}
}

func (c *processCollector) Collect(ch chan<- prometheus.Metric) {
	if st, err := c.proc.Stat(); err == nil {
		ch <- prometheus.MustNewConstMetric(c.cpu, prometheus.CounterValue, st.CPUTime())
		ch <- prometheus.MustNewConstMetric(c.rss, prometheus.GaugeValue, float64(st.ResidentMemory()))
		ch <- prometheus.MustNewConstMetric(c.vsz, prometheus.GaugeValue, float64(st.VirtualMemory()))
	}
	if n, err := c.proc.FileDescriptorsLen(); err == nil {
		ch <- prometheus.MustNewConstMetric(c.fds, prometheus.GaugeValue, float64(n))
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err == nil {
		ch <- prometheus.MustNewConstMetric(c.maxFDs, prometheus.GaugeValue, float64(lim.Cur))
	}
	if c.start != 0 {
		ch <- prometheus.MustNewConstMetric(c.t, prometheus.GaugeValue, c.start)
	}
}
