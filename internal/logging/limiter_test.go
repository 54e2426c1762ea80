package logging

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var l Limiter
	steps := []struct {
		at   time.Duration
		want bool
	}{
		{0, true},
		{time.Second, false},
		{LimitEvery - time.Nanosecond, false},
		{LimitEvery, true},
		{LimitEvery + time.Second, false},
		{2 * LimitEvery, true},
	}
	for _, s := range steps {
		if got := l.Allow(t0.Add(s.at)); got != s.want {
			t.Errorf("Allow(+%v) = %v, want %v", s.at, got, s.want)
		}
	}
}

func TestLimiterLogged(t *testing.T) {
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var l Limiter
	l.Logged(t0)
	if l.Allow(t0.Add(LimitEvery / 2)) {
		t.Error("Allow right after Logged")
	}
	if !l.Allow(t0.Add(LimitEvery)) {
		t.Error("no Allow one interval after Logged")
	}
}
