package eval

import (
	"sort"
	"strings"
)

// suggestNames is the "Did you mean …?" of C++ Nix 2.8 for query among
// names: the closest by edit distance (at most 2), up to 5, nearest first
// and by name among equals, as "x", "one of x or y" or "one of x, y or
// z"; "" when none is close.
func suggestNames(names []string, query string) string {
	type match struct {
		d    int
		name string
	}
	var ms []match
	for _, n := range names {
		if d := editDistance(query, n); d <= 2 {
			ms = append(ms, match{d, n})
		}
	}
	sort.Slice(ms, func(i, j int) bool {
		if ms[i].d != ms[j].d {
			return ms[i].d < ms[j].d
		}
		return ms[i].name < ms[j].name
	})
	ms = ms[:min(len(ms), 5)]
	// Nix keeps them in a set ordered by distance, then name: the trimmed
	// set prints in that order
	switch len(ms) {
	case 0:
		return ""
	case 1:
		return ms[0].name
	}
	var b strings.Builder
	b.WriteString("one of ")
	for i, m := range ms {
		switch {
		case i == 0:
		case i == len(ms)-1:
			b.WriteString(" or ")
		default:
			b.WriteString(", ")
		}
		b.WriteString(m.name)
	}
	return b.String()
}

// editDistance is the Levenshtein distance of a and b in bytes, as Nix
// computes it (two rows).
func editDistance(a, b string) int {
	v0 := make([]int, len(b)+1)
	v1 := make([]int, len(b)+1)
	for i := range v0 {
		v0[i] = i
	}
	for i := 0; i < len(a); i++ {
		v1[0] = i + 1
		for j := 0; j < len(b); j++ {
			sub := v0[j]
			if a[i] != b[j] {
				sub++
			}
			v1[j+1] = min(v0[j+1]+1, v1[j]+1, sub)
		}
		v0, v1 = v1, v0
	}
	return v0[len(b)]
}
