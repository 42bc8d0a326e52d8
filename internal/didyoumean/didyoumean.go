package didyoumean

import (
	"strconv"
	"strings"
)

// Closest returns the names nearest to got by edit distance, ignoring case, when they are
// close: within max(2, len(got)/5) edits. It returns nil when none is.
func Closest(got string, names []string) []string {
	var best []string
	bestDist := max(2, len(got)/5) + 1
	lower := strings.ToLower(got)
	for _, n := range names {
		switch d := Distance(lower, strings.ToLower(n)); {
		case d < bestDist:
			bestDist, best = d, []string{n}
		case d == bestDist && best != nil:
			best = append(best, n)
		}
	}
	return best
}

// Suggest returns `did you mean "a" or "b"?` naming names, or "" when there are none.
func Suggest(names []string) string {
	if len(names) == 0 {
		return ""
	}
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = strconv.Quote(n)
	}
	return "did you mean " + strings.Join(quoted, " or ") + "?"
}

// Distance is the Levenshtein distance between a and b, in bytes.
func Distance(a, b string) int {
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
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
