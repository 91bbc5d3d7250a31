package eval

import (
	"regexp"
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
func splitMatches(rx *regexp.Regexp, s string) [][]int {
	if strings.ContainsRune(rx.String(), '^') {
		return rx.FindAllStringSubmatchIndex(s, -1)
	}
	var out [][]int
	for pos := 0; pos <= len(s); {
		m := rx.FindStringSubmatchIndex(s[pos:])
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
