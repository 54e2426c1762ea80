package testutil

import "testing"

// allocTries is how many windows AllocsPerCall measures at most.
const allocTries = 5

// AllocsPerCall is testing.AllocsPerRun for code that runs beside other
// goroutines of its own (a sink's writer, a test listener): the runtime
// counts their allocations too, so one window can show a busy writer
// rather than f. It measures up to five windows of runs calls and
// returns the smallest average, stopping at the first window without an
// allocation. An allocation f makes on every call shows in every window,
// so a regression still fails.
func AllocsPerCall(runs int, f func()) float64 {
	least := testing.AllocsPerRun(runs, f)
	for i := 1; i < allocTries && least > 0; i++ {
		least = min(least, testing.AllocsPerRun(runs, f))
	}
	return least
}
