package testutil

import (
	"testing"
	"testing/synctest"
	"time"
)

func TestEventually(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		n := 0
		if !Eventually(time.Second, func() bool { n++; return n == 3 }) {
			t.Fatal("Eventually = false for a condition that holds at the third check")
		}
		if got, want := time.Since(start), 2*PollInterval; got != want {
			t.Errorf("took %v, want %v (two intervals)", got, want)
		}

		start = time.Now()
		n = 0
		if Eventually(time.Second, func() bool { n++; return false }) {
			t.Fatal("Eventually = true for a condition that never holds")
		}
		if got := time.Since(start); got < time.Second || got > time.Second+PollInterval {
			t.Errorf("gave up after %v, want the 1s timeout", got)
		}
		if want := int(time.Second/PollInterval) + 1; n != want {
			t.Errorf("checked %d times, want %d", n, want)
		}
	})
}

// fakeT records Fatalf instead of stopping the test.
type fakeT struct {
	testing.TB
	failed string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.failed = format
}

func TestWaitFor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ft := &fakeT{TB: t}
		WaitFor(ft, time.Second, "nothing", func() bool { return true })
		if ft.failed != "" {
			t.Errorf("WaitFor failed for a condition that holds: %q", ft.failed)
		}
		WaitFor(ft, time.Second, "nothing", func() bool { return false })
		if ft.failed == "" {
			t.Error("WaitFor did not fail for a condition that never holds")
		}
	})
}
