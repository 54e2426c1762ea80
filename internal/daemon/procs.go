package daemon

import (
	"os"
	"runtime"
)

// LimitProcs caps GOMAXPROCS at the number of sources (at least 1), unless
// the GOMAXPROCS environment variable sets it. It returns the value in
// effect and whether it changed it.
//
// Each source reads its socket and walks every stack it feeds in one
// goroutine, so the daemon has at most one busy goroutine per source. More
// Ps than that buy no parallelism, but they cost: each time the source
// sleeps or parks, the scheduler wakes a spare thread to look for work
// (futex wake-ups, an eventfd write to interrupt the poller, context
// switches). Measured on 2 vCPUs at 20k flows/s, one P per source saved
// about 10 % of the daemon's CPU (docs/performance.md).
func LimitProcs(sources int) (n int, changed bool) {
	cur := runtime.GOMAXPROCS(0)
	if os.Getenv("GOMAXPROCS") != "" {
		return cur, false
	}
	n = min(cur, max(sources, 1))
	if n == cur {
		return cur, false
	}
	runtime.GOMAXPROCS(n)
	return n, true
}
