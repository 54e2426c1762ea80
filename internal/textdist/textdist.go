// Package textdist measures how far apart two names are, for the "did you
// mean" suggestions of configuration errors.
package textdist

// Levenshtein is the edit distance between a and b (insertions, deletions
// and substitutions of bytes).
func Levenshtein(a, b string) int { return distance(a, b, false) }

// OSA is the optimal-string-alignment distance between a and b: Levenshtein
// plus adjacent transpositions, each costing one edit.
func OSA(a, b string) int { return distance(a, b, true) }

func distance(a, b string, transpose bool) int {
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
			if transpose && i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], pp[j-2]+1)
			}
		}
		pp, prev, cur = prev, cur, pp
	}
	return prev[len(b)]
}
