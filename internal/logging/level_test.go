package logging

import (
	"log/slog"
	"testing"
)

func TestLevelMapping(t *testing.T) {
	for _, tc := range []struct {
		l slog.Level
		u int
	}{
		{slog.LevelDebug, 1}, {slog.LevelDebug + 3, 1}, {slog.LevelInfo, 3}, {LevelNotice, 5},
		{slog.LevelWarn, 5}, {slog.LevelError, 7}, {LevelFatal, 8}, {LevelFatal + 4, 8},
	} {
		if got := ULevel(tc.l); got != tc.u {
			t.Errorf("ULevel(%v) = %d, want %d", tc.l, got, tc.u)
		}
	}
	for _, tc := range []struct {
		u int
		l slog.Level
	}{
		{0, slog.LevelDebug}, {1, slog.LevelDebug}, {2, slog.LevelInfo}, {3, slog.LevelInfo},
		{4, LevelNotice}, {5, LevelNotice}, {6, slog.LevelError}, {7, slog.LevelError},
		{8, LevelFatal}, {9, LevelFatal + 1},
	} {
		if got := SlogLevel(tc.u); got != tc.l {
			t.Errorf("SlogLevel(%d) = %v, want %v", tc.u, got, tc.l)
		}
	}
	// Round trip on the defined levels.
	for _, u := range []int{1, 3, 5, 7, 8} {
		if got := ULevel(SlogLevel(u)); got != u {
			t.Errorf("ULevel(SlogLevel(%d)) = %d", u, got)
		}
	}
}
