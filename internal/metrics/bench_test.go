package metrics

import (
	"log/slog"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// cpuTime is the process's user and system CPU time so far: the machine
// is shared, so wall time per op overstates the cost.
func cpuTime(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the CPU per op since start, and what one op a second
// is in percent of the daemon's CPU at 20k flows/s.
func reportCPU(b *testing.B, start time.Duration, unit string) {
	per := (cpuTime(b) - start).Seconds() / float64(b.N)
	b.ReportMetric(per*1e9, "cpu-ns/op")
	b.ReportMetric(100*per/daemonCPUAt20k, unit)
}

// daemonCPUAt20k is ulogd-go's CPU per second at 20k flows/s on the
// canonical stack (docs/performance.md: 2.45 ms per 1000 events, two
// events per flow).
const daemonCPUAt20k = 2.45e-3 * 40 // seconds of CPU per second

// BenchmarkScrape: one whole scrape of /metrics (the stacks' counters, Go
// and process collectors, text encoding), and what one scrape a second
// adds to the daemon's CPU at 20k flows/s, in percent. The event path is
// not touched: the counters it keeps anyway are read here.
func BenchmarkScrape(b *testing.B) {
	f := newFixture(b)
	f.emit(100)
	h := Handler(f.c, slog.New(slog.DiscardHandler))
	b.ReportAllocs()
	start := cpuTime(b)
	for b.Loop() {
		if code, _ := scrape(b, h, "/metrics"); code != 200 {
			b.Fatal(code)
		}
	}
	reportCPU(b, start, "%cpu@20k/s,1s-scrape")
}

// BenchmarkObserve: the readiness sampling the endpoint does every
// second.
func BenchmarkObserve(b *testing.B) {
	f := newFixture(b)
	b.ReportAllocs()
	start := cpuTime(b)
	for b.Loop() {
		f.c.Observe()
	}
	reportCPU(b, start, "%cpu@20k/s")
}
