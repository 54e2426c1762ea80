package nl

import (
	"math"
	"testing"
	"time"
)

func TestCoalesceDelay(t *testing.T) {
	const maxD = 4 * time.Millisecond
	for _, tc := range []struct {
		name         string
		last         time.Duration
		rcvbuf, load int
		span, want   time.Duration
	}{
		{"nothing read", maxD, 1 << 20, 0, time.Millisecond, maxD},
		{"no time span", maxD, 1 << 20, 5000, 0, 0},
		{"since the zero time", maxD, 212992, 5000, time.Duration(math.MaxInt64), maxD},
		// 40k events/s of 1.3 KB against a 128 MiB buffer: the full delay.
		{"big buffer", maxD, 128 << 20, 40 * 1300, time.Millisecond, maxD},
		// The same rate against the kernel's default 208 KiB: a quarter
		// of it (53248 bytes) fills in 1.024 ms.
		{"default buffer", maxD, 212992, 40 * 1300, time.Millisecond, 1024 * time.Microsecond},
		// A burst read right after a wake-up: too fast to sleep at all.
		{"burst", maxD, 212992, 64 * 1300, 20 * time.Microsecond, 0},
		{"exactly the limit", maxD, 4 * 1000, 1000, maxD, maxD},
		// After a wait the sleeps grow from minCoalesce, doubling (plus
		// minCoalesce) while the rate allows.
		{"after a wait", 0, 128 << 20, 40 * 1300, time.Millisecond, minCoalesce},
		{"growing", 700 * time.Microsecond, 128 << 20, 40 * 1300, time.Millisecond, 1500 * time.Microsecond},
		// A lull: 2 events in 2.3 ms would allow a long sleep; the last
		// sleep (2.2 ms) bounds it to 4.5 ms.
		{"lull", 2200 * time.Microsecond, 2 << 20, 2 * 1300, 2300 * time.Microsecond, 4500 * time.Microsecond},
	} {
		max := maxD
		if tc.name == "lull" {
			max = time.Second
		}
		if got := coalesceDelay(max, tc.last, tc.rcvbuf, tc.load, tc.span); got != tc.want {
			t.Errorf("%s: coalesceDelay(%v, %v, %d, %d, %v) = %v, want %v",
				tc.name, max, tc.last, tc.rcvbuf, tc.load, tc.span, got, tc.want)
		}
	}
}
