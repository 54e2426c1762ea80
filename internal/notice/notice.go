// Package notice holds what plugins need to log ulogd's NOTICE messages:
// the level itself, and a limiter for notices that would otherwise repeat
// on every event.
package notice

import (
	"log/slog"
	"time"
)

// Level is ulogd's NOTICE level (5), between Info and Warn; the same value
// as the daemon's LevelNotice, which plugins do not import.
const Level = slog.Level(2)

// Every is the shortest interval between two notices let through by a
// Limiter.
const Every = 10 * time.Second

// Limiter lets a message through at most once per Every. The zero value
// lets the first one through. It is not safe for concurrent use.
type Limiter struct {
	last time.Time
}

// Allow reports whether a message may be logged at now, and if so counts
// it as logged.
func (l *Limiter) Allow(now time.Time) bool {
	if !l.last.IsZero() && now.Sub(l.last) < Every {
		return false
	}
	l.last = now
	return true
}

// Logged counts a message logged at now without asking Allow (one that
// must not be held back): the next one waits Every from now.
func (l *Limiter) Logged(now time.Time) {
	l.last = now
}
