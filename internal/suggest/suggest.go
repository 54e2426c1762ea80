// Package suggest finds the "did you mean" candidates of configuration
// errors: the option names, [global] keys and plugin names close to a word
// the user wrote. Every such hint in ulogd-go comes from Closest, so they
// all follow one rule.
package suggest

import (
	"sort"
	"strconv"
	"strings"
)

// maxResults is how many candidates Closest returns at most.
const maxResults = 3

// Closest returns the candidates close to word, best first, at most three.
//
// The comparison ignores case. A candidate is close when its edit distance
// to word (Distance) is at most a third of word's length (at least 1, at
// most 3), or, for a word of four letters or more, when one is a prefix of
// the other ("netlink_socket_buffer" → "netlink_socket_buffer_size").
// Candidates at the same distance keep their order in candidates.
func Closest(word string, candidates []string) []string {
	type cand struct {
		name string
		d    int
	}
	lw := strings.ToLower(word)
	limit := min(3, max(1, len(word)/3))
	var cs []cand
	for _, c := range candidates {
		lc := strings.ToLower(c)
		d := Distance(lw, lc)
		if d > limit && !(len(lw) >= 4 && (strings.HasPrefix(lc, lw) || strings.HasPrefix(lw, lc))) {
			continue
		}
		cs = append(cs, cand{c, d})
	}
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].d < cs[j].d })
	var out []string
	for i := 0; i < len(cs) && i < maxResults; i++ {
		out = append(out, cs[i].name)
	}
	return out
}

// Hint is Closest as the end of an error message: ` (did you mean "a" or
// "b"?)`, or "" when nothing is close. quote puts the names in double
// quotes (for words the message quotes too, such as option names).
func Hint(word string, candidates []string, quote bool) string {
	names := Closest(word, candidates)
	if len(names) == 0 {
		return ""
	}
	if quote {
		for i, n := range names {
			names[i] = strconv.Quote(n)
		}
	}
	return " (did you mean " + orList(names) + "?)"
}

// orList renders [a b c] as "a, b or c".
func orList(names []string) string {
	if len(names) == 1 {
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// Distance is the optimal-string-alignment distance between a and b: the
// number of byte insertions, deletions, substitutions and transpositions of
// adjacent bytes that turn one into the other (no substring is edited
// twice).
func Distance(a, b string) int {
	// Three rows: two back (for transpositions), previous, current.
	pp := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], pp[j-2]+1)
			}
		}
		pp, prev, cur = prev, cur, pp
	}
	return prev[len(b)]
}
