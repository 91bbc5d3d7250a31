package eval

import (
	"regexp"
	"regexp/syntax"
	"strings"
)

// posixToGo rewrites a POSIX extended regular expression, as C++ Nix
// reads it (std::regex::extended), into Go's syntax, which otherwise
// reads the same text differently: a backslash inside brackets is a
// literal there, outside them it escapes only ^$.*+?()[{|\ (Perl's \d,
// \w, \s, \b, \n are errors), and a quantifier after a quantifier does
// not make it lazy. ok is false where Nix rejects the expression.
func posixToGo(re string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(re); i++ {
		c := re[i]
		switch c {
		case '\\':
			if i+1 == len(re) || !strings.ContainsRune(`^$.*+?()[{|\`, rune(re[i+1])) {
				return "", false
			}
			b.WriteByte('\\')
			b.WriteByte(re[i+1])
			i++
		case '[':
			j, ok := posixBracket(&b, re, i)
			if !ok {
				return "", false
			}
			i = j
		case '*', '+', '?':
			b.WriteByte(c)
			// "a*?", "a+?", "a??": in Go lazy, in POSIX a quantified
			// "a*" etc.: the same strings, greedily
			for i+1 < len(re) && re[i+1] == '?' {
				if c == '+' {
					s := b.String()
					b.Reset()
					b.WriteString(s[:len(s)-1] + "*")
				}
				i++
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), true
}

// posixBracket copies the bracket expression at re[i] ('[') to b in Go's
// syntax and returns the index of its closing ']'.
func posixBracket(b *strings.Builder, re string, i int) (int, bool) {
	b.WriteByte('[')
	j := i + 1
	if j < len(re) && re[j] == '^' {
		b.WriteByte('^')
		j++
	}
	first := true
	for ; j < len(re); j++ {
		c := re[j]
		switch {
		case c == ']' && !first:
			b.WriteByte(']')
			return j, true
		case c == '[' && j+1 < len(re) && (re[j+1] == ':' || re[j+1] == '=' || re[j+1] == '.'):
			end := strings.Index(re[j+2:], string(re[j+1])+"]")
			if end < 0 {
				return 0, false
			}
			b.WriteString(re[j : j+2+end+2])
			j += 2 + end + 1
		case c == '\\' || c == '[' || c == ']':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
		first = false
	}
	return 0, false
}

// splitMatches finds the matches split reports, as C++ Nix's
// std::regex_iterator does: unlike Go's FindAll, an empty match right
// after a non-empty one counts, and after an empty match the next one
// may not be empty at the same place. Searching from an offset loses the
// context before it, so an expression with ^ keeps Go's FindAll.
// The matches are appended to out (the caller's, on its stack).
func splitMatches(r *nixRegex, s string, out [][]int) [][]int {
	if strings.ContainsRune(r.rx.String(), '^') {
		ms := r.rx.FindAllStringSubmatchIndex(s, -1)
		for i := range ms {
			ms[i] = r.fix(ms[i])
		}
		return ms
	}
	for pos := 0; pos <= len(s); {
		m := r.submatch(s[pos:])
		if m == nil {
			break
		}
		for k := range m {
			if m[k] >= 0 {
				m[k] += pos
			}
		}
		if m[0] == m[1] && len(out) > 0 {
			if last := out[len(out)-1]; last[0] == last[1] && last[1] == m[0] {
				// an empty match where the last one was empty: the
				// longest match here is empty, so none is non-empty;
				// look from the next byte
				if pos = m[0] + 1; pos > len(s) {
					break
				}
				continue
			}
		}
		out = append(out, m)
		pos = m[1]
	}
	return out
}

// nixRegex is a compiled expression with the groups C++ Nix reports.
// libstdc++ ends a repetition of a group that can match empty (`(|a)+`,
// `(a*)*`) with one more, empty, iteration, so that group's submatch is
// the empty string at the end of the repetition, where Go reports the
// last non-empty iteration. Such repetitions get a wrapper group here
// whose end gives that position; the numbers of Nix's groups are
// remapped around the wrappers.
type nixRegex struct {
	rx      *regexp.Regexp
	groups  int      // Nix's groups
	remap   []int    // Nix group -> Go group; nil when there are no wrappers
	empties [][2]int // {Nix group, Go wrapper group}
}

// compileNixRegex compiles src (Go syntax, from posixToGo).
func compileNixRegex(src string) (*nixRegex, error) {
	re, err := syntax.Parse(src, syntax.Perl|syntax.DotNL)
	if err != nil {
		return nil, err
	}
	groups := re.MaxCap()
	wrapped := map[*syntax.Regexp]int{} // wrapper -> Nix group
	re = wrapEmptyRepeats(re, wrapped)
	if len(wrapped) == 0 {
		rx, err := regexp.Compile("(?s)" + src)
		if err != nil {
			return nil, err
		}
		rx.Longest()
		return &nixRegex{rx: rx, groups: groups}, nil
	}
	rx, err := regexp.Compile(re.String())
	if err != nil {
		return nil, err
	}
	rx.Longest()
	r := &nixRegex{rx: rx, groups: groups, remap: make([]int, groups+1)}
	// Go numbers groups by their opening parenthesis: a preorder walk
	n := 0
	var walk func(x *syntax.Regexp)
	walk = func(x *syntax.Regexp) {
		if x.Op == syntax.OpCapture {
			n++
			if g, ok := wrapped[x]; ok {
				r.empties = append(r.empties, [2]int{g, n})
			} else {
				r.remap[x.Cap] = n
			}
		}
		for _, s := range x.Sub {
			walk(s)
		}
	}
	walk(re)
	return r, nil
}

// wrapEmptyRepeats puts a fresh capture around every unbounded repetition
// of a capture group that can match empty, recording it in wrapped.
func wrapEmptyRepeats(x *syntax.Regexp, wrapped map[*syntax.Regexp]int) *syntax.Regexp {
	for i, s := range x.Sub {
		x.Sub[i] = wrapEmptyRepeats(s, wrapped)
	}
	unbounded := x.Op == syntax.OpStar || x.Op == syntax.OpPlus || x.Op == syntax.OpRepeat && x.Max == -1
	if !unbounded || len(x.Sub) != 1 || x.Sub[0].Op != syntax.OpCapture || !nullable(x.Sub[0]) {
		return x
	}
	w := &syntax.Regexp{Op: syntax.OpCapture, Sub: []*syntax.Regexp{x}, Flags: x.Flags}
	wrapped[w] = x.Sub[0].Cap
	return w
}

// nullable tells whether x can match the empty string.
func nullable(x *syntax.Regexp) bool {
	switch x.Op {
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText,
		syntax.OpWordBoundary, syntax.OpNoWordBoundary, syntax.OpStar, syntax.OpQuest:
		return true
	case syntax.OpLiteral:
		return len(x.Rune) == 0
	case syntax.OpCapture, syntax.OpPlus:
		return nullable(x.Sub[0])
	case syntax.OpRepeat:
		return x.Min == 0 || nullable(x.Sub[0])
	case syntax.OpConcat:
		for _, s := range x.Sub {
			if !nullable(s) {
				return false
			}
		}
		return true
	case syntax.OpAlternate:
		for _, s := range x.Sub {
			if nullable(s) {
				return true
			}
		}
	}
	return false
}

// submatch is FindStringSubmatchIndex with Nix's groups.
func (r *nixRegex) submatch(s string) []int {
	return r.fix(r.rx.FindStringSubmatchIndex(s))
}

// fix turns Go's submatch indexes into Nix's.
func (r *nixRegex) fix(m []int) []int {
	if m == nil || r.remap == nil {
		return m
	}
	out := make([]int, 2*(r.groups+1))
	out[0], out[1] = m[0], m[1]
	for g := 1; g <= r.groups; g++ {
		j := r.remap[g]
		out[2*g], out[2*g+1] = m[2*j], m[2*j+1]
	}
	for _, e := range r.empties {
		if end := m[2*e[1]+1]; end >= 0 {
			out[2*e[0]], out[2*e[0]+1] = end, end
		}
	}
	return out
}
