package logging

import "time"

// LimitEvery is the shortest interval between two messages let through by
// a Limiter.
const LimitEvery = 10 * time.Second

// Limiter lets a message through at most once per LimitEvery. The zero
// value lets the first one through. It is not safe for concurrent use.
type Limiter struct {
	last time.Time
}

// Allow reports whether a message may be logged at now, and if so counts
// it as logged.
func (l *Limiter) Allow(now time.Time) bool {
	if !l.last.IsZero() && now.Sub(l.last) < LimitEvery {
		return false
	}
	l.last = now
	return true
}

// Logged counts a message logged at now without asking Allow (one that
// must not be held back): the next one waits LimitEvery from now.
func (l *Limiter) Logged(now time.Time) {
	l.last = now
}
