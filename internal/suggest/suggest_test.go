package suggest

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"abc", "", 3},
		{"", "abc", 3},
		{"sync", "sync", 0},
		{"snyc", "sync", 1},
		{"logfile", "logfil", 1},
		{"hash_enabled", "hash_enable", 1},
		{"kitten", "sitting", 3},
		{"ab", "ba", 1},
		{"NFLGO", "NFLOG", 1},
		{"ca", "abc", 3}, // OSA, not Damerau: no edit of a transposed pair
	} {
		if got := Distance(c.a, c.b); got != c.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

func TestClosest(t *testing.T) {
	plugins := []string{"BASE", "IP2BIN", "IP2STR", "LOGEMU", "NACCT", "NFCT", "NFLOG", "REC"}
	options := []string{"file", "files", "fill", "sync", "fila", "hash_enable", "netlink_socket_buffer_size"}
	global := []string{"logfile", "loglevel", "plugin", "stack"}
	for _, c := range []struct {
		word  string
		cands []string
		want  []string
	}{
		{"IP2SRT", plugins, []string{"IP2STR"}},
		{"logemu", plugins, []string{"LOGEMU"}}, // case only
		{"nfct", plugins, []string{"NFCT"}},
		{"NFLGO", plugins, []string{"NFLOG"}},
		{"RECC", plugins, []string{"REC"}},
		{"PGSQL", plugins, nil},
		// "files" and "fila" are 2 edits away, over the limit for a 4-letter word.
		{"fiel", options, []string{"file", "fill"}},
		{"File", options, []string{"file", "files", "fill"}}, // at most three, best first
		{"hash_enabled", options, []string{"hash_enable"}},
		{"netlink_socket_buffer", options, []string{"netlink_socket_buffer_size"}},
		{"bogus", options, nil},
		{"logfil", global, []string{"logfile"}},
		{"stak", global, []string{"stack"}},
		{"x", global, nil},
	} {
		if diff := cmp.Diff(c.want, Closest(c.word, c.cands)); diff != "" {
			t.Errorf("Closest(%q) (-want +got):\n%s", c.word, diff)
		}
	}
}

func TestHint(t *testing.T) {
	for _, c := range []struct {
		word  string
		quote bool
		want  string
	}{
		{"fiel", true, ` (did you mean "file" or "fill"?)`},
		{"File", true, ` (did you mean "file", "files" or "fill"?)`},
		{"fiel", false, ` (did you mean file or fill?)`},
		{"bogus", true, ""},
	} {
		if got := Hint(c.word, []string{"file", "files", "fill"}, c.quote); got != c.want {
			t.Errorf("Hint(%q, %v) = %q, want %q", c.word, c.quote, got, c.want)
		}
	}
}
