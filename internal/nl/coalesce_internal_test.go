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
		rcvbuf, load int
		span, want   time.Duration
	}{
		{"no estimate yet", 1 << 20, 0, 0, maxD},
		{"nothing read", 1 << 20, 0, time.Millisecond, maxD},
		{"since the zero time", 212992, 5000, time.Duration(math.MaxInt64), maxD},
		// 40k events/s of 1.3 KB against a 128 MiB buffer: the full delay.
		{"big buffer", 128 << 20, 40 * 1300, time.Millisecond, maxD},
		// The same rate against the kernel's default 208 KiB: a quarter
		// of it (53248 bytes) fills in 1.024 ms.
		{"default buffer", 212992, 40 * 1300, time.Millisecond, 1024 * time.Microsecond},
		// A burst read right after a wake-up: too fast to sleep at all.
		{"burst", 212992, 64 * 1300, 20 * time.Microsecond, 0},
		{"exactly the limit", 4 * 1000, 1000, maxD, maxD},
	} {
		if got := coalesceDelay(maxD, tc.rcvbuf, tc.load, tc.span); got != tc.want {
			t.Errorf("%s: coalesceDelay(%v, %d, %d, %v) = %v, want %v",
				tc.name, maxD, tc.rcvbuf, tc.load, tc.span, got, tc.want)
		}
	}
}
