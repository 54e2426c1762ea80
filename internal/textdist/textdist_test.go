package textdist

import "testing"

func TestDistances(t *testing.T) {
	for _, c := range []struct {
		a, b     string
		lev, osa int
	}{
		{"", "", 0, 0},
		{"abc", "", 3, 3},
		{"", "abc", 3, 3},
		{"logfile", "logfil", 1, 1},
		{"kitten", "sitting", 3, 3},
		{"ab", "ba", 2, 1},
		{"NFLGO", "NFLOG", 2, 1},
		{"ca", "abc", 3, 3},
	} {
		if got := Levenshtein(c.a, c.b); got != c.lev {
			t.Errorf("Levenshtein(%q, %q) = %d, want %d", c.a, c.b, got, c.lev)
		}
		if got := OSA(c.a, c.b); got != c.osa {
			t.Errorf("OSA(%q, %q) = %d, want %d", c.a, c.b, got, c.osa)
		}
	}
}
