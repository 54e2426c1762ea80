// Package logging holds what every part of ulogd-go needs to log as ulogd
// does: ulogd's levels placed among slog's, their mapping to ulogd's level
// numbers, and a limiter for messages that would otherwise repeat on every
// event. The daemon's log (its destinations and line format) is in
// internal/daemon; plugins only receive a *slog.Logger and these levels.
package logging

import "log/slog"

// ulogd's own log has five levels (1 debug, 3 info, 5 notice, 7 error,
// 8 fatal). slog has Debug (-4), Info (0), Warn (4) and Error (8); the two
// missing ones are placed so that ordering is preserved.
const (
	// LevelNotice is ulogd's NOTICE (5), between Info and Warn.
	LevelNotice = slog.Level(2)
	// LevelFatal is ulogd's FATAL (8), above Error.
	LevelFatal = slog.Level(12)
)

// ULevel maps a slog level to ulogd's level number: anything below Info is
// 1 (debug), below Notice 3 (info), below Error 5 (notice, which includes
// Warn), below Fatal 7 (error), and Fatal and above 8.
func ULevel(l slog.Level) int {
	switch {
	case l < slog.LevelInfo:
		return 1
	case l < LevelNotice:
		return 3
	case l < slog.LevelError:
		return 5
	case l < LevelFatal:
		return 7
	default:
		return 8
	}
}

// SlogLevel maps a ulogd level number to a slog level. Numbers between the
// defined ones round up to the next defined level (2→Info, 4→Notice,
// 6→Error), numbers below 1 (0 means "not given" for -l) give Debug and
// numbers above 8 give a level above Fatal. Used as a threshold this filters
// exactly like ulogd's "emit if level >= loglevel".
func SlogLevel(u int) slog.Level {
	switch {
	case u <= 1:
		return slog.LevelDebug
	case u <= 3:
		return slog.LevelInfo
	case u <= 5:
		return LevelNotice
	case u <= 7:
		return slog.LevelError
	case u == 8:
		return LevelFatal
	default:
		return LevelFatal + 1
	}
}
