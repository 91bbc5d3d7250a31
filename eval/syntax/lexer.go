package syntax

import (
	"fmt"
	"strconv"
	"strings"
)

type tokKind int

const (
	tEOF tokKind = iota
	tID
	tINT
	tFLOAT
	tPATH  // text is the path; interp set when "${" follows
	tHPATH // ~/...
	tSPATH // <...>
	tURI
	tOP // punctuation and operators, text holds it
	tDQUOTE
	tINDOPEN
	tDOLLARCURLY
)

type token struct {
	kind   tokKind
	text   string
	off    int
	end    int
	interp bool // path continues with an interpolation
}

// String names the token as C++ Nix's (bison) parser does in its
// messages: "unexpected IN", "unexpected '='".
func (t token) String() string {
	switch t.kind {
	case tEOF:
		return "end of file"
	case tID:
		if t.text == "or" {
			return "OR_KW"
		}
		if keywords[t.text] {
			return strings.ToUpper(t.text)
		}
		return "ID"
	case tINT:
		return "INT"
	case tFLOAT:
		return "FLOAT"
	case tPATH:
		return "PATH"
	case tHPATH:
		return "HPATH"
	case tSPATH:
		return "SPATH"
	case tURI:
		return "URI"
	case tDQUOTE:
		return "'\"'"
	case tINDOPEN:
		return "IND_STRING_OPEN"
	case tDOLLARCURLY:
		return "DOLLAR_CURLY"
	}
	if name, ok := bisonOps[t.text]; ok {
		return name
	}
	return "'" + t.text + "'"
}

var bisonOps = map[string]string{"==": "EQ", "!=": "NEQ", "<=": "LEQ", ">=": "GEQ", "&&": "AND", "||": "OR",
	"->": "IMPL", "//": "UPDATE", "++": "CONCAT", "...": "ELLIPSIS"}

// ParseError is a syntax error at a position.
type ParseError struct {
	Pos Pos
	Msg string
}

func (e *ParseError) Error() string {
	if sn := e.Pos.Snippet(); sn != "" {
		return fmt.Sprintf("%s\n\n       at %s:\n\n%s", e.Msg, e.Pos, indent(sn, "       "))
	}
	return fmt.Sprintf("%s\n\n       at %s:", e.Msg, e.Pos)
}

func indent(s, p string) string {
	if s == "" {
		return s
	}
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = strings.TrimRight(p+lines[i], " \t")
	}
	return strings.Join(lines, "\n")
}

type lexer struct {
	src *Source
	s   []byte
	// str is s as one string, so that token texts are substrings of it
	// instead of an allocation each
	str string
	pos int
	// the token peeked at, if hasPeek (kept inline: a pointer to it was
	// an allocation per peek, a fifth of what importing small files
	// allocated)
	peek    token
	hasPeek bool
	// lastLex is where the last lexeme began as C++ Nix's lexer splits
	// the text (a token, a run of blanks, a comment): the end of the file
	// is reported there, as Nix's parser has no location of its own for it
	lastLex int
}

func isPathChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' || c == '+'
}

func isIDStart(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' }
func isIDChar(c byte) bool {
	return isIDStart(c) || c >= '0' && c <= '9' || c == '\'' || c == '-'
}
func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isURIChar(c byte) bool {
	return isPathChar(c) || strings.IndexByte("%/?:@&=$,!~*'", c) >= 0
}

func (l *lexer) errAt(off int, format string, args ...any) {
	panic(&ParseError{Pos: Pos{l.src, off}, Msg: fmt.Sprintf(format, args...)})
}

func (l *lexer) at(i int) byte {
	if i < len(l.s) {
		return l.s[i]
	}
	return 0
}

func (l *lexer) skipSpace() {
	blanks := false // in a run of blanks, one lexeme
	for l.pos < len(l.s) {
		c := l.s[l.pos]
		isBlank := c == ' ' || c == '\t' || c == '\n' || c == '\r'
		if isBlank && !blanks || !isBlank && (c == '#' || c == '/' && l.at(l.pos+1) == '*') {
			l.lastLex = l.pos
		}
		blanks = isBlank
		switch {
		case isBlank:
			l.pos++
		case c == '#':
			for l.pos < len(l.s) && l.s[l.pos] != '\n' && l.s[l.pos] != '\r' {
				l.pos++
			}
		case c == '/' && l.at(l.pos+1) == '*':
			end := strings.Index(l.str[l.pos+2:], "*/")
			if end < 0 {
				l.errAt(len(l.s), "syntax error, unterminated comment")
			}
			l.pos += 2 + end + 2
		default:
			return
		}
	}
}

// pathLen matches Nix's PATH rule (and the interpolated path prefix) at i.
// It returns the length and whether "${" follows.
func (l *lexer) pathLen(i int) (int, bool) {
	j := i
	for j < len(l.s) && isPathChar(l.s[j]) {
		j++
	}
	segs := 0
	for l.at(j) == '/' && isPathChar(l.at(j+1)) {
		j++
		for j < len(l.s) && isPathChar(l.s[j]) {
			j++
		}
		segs++
	}
	if l.at(j) == '/' && l.at(j+1) == '$' && l.at(j+2) == '{' {
		return j + 1 - i, true
	}
	if segs == 0 {
		return 0, false
	}
	if l.at(j) == '$' && l.at(j+1) == '{' {
		return j - i, true
	}
	if l.at(j) == '/' {
		j++ // trailing slash: reported by the parser
	}
	return j - i, false
}

func (l *lexer) next() token {
	if l.hasPeek {
		t := l.peek
		l.hasPeek = false
		return t
	}
	return l.lex()
}

func (l *lexer) peekTok() token {
	if !l.hasPeek {
		l.peek, l.hasPeek = l.lex(), true
	}
	return l.peek
}

func (l *lexer) lex() token {
	l.skipSpace()
	start := l.pos
	if start >= len(l.s) {
		return token{kind: tEOF, off: l.lastLex, end: start}
	}
	l.lastLex = start
	c := l.s[start]
	// Longest match among the word-like rules, earlier rule wins a tie.
	best, kind, interp := 0, tEOF, false
	if isIDStart(c) {
		j := start + 1
		for j < len(l.s) && isIDChar(l.s[j]) {
			j++
		}
		best, kind = j-start, tID
	}
	if isDigit(c) {
		j := start
		for j < len(l.s) && isDigit(l.s[j]) {
			j++
		}
		if j-start > best {
			best, kind = j-start, tINT
		}
	}
	if isDigit(c) || c == '.' {
		if n := floatLen(l.s[start:]); n > best {
			best, kind = n, tFLOAT
		}
	}
	if isPathChar(c) || c == '/' {
		if n, in := l.pathLen(start); n > best {
			best, kind, interp = n, tPATH, in
		}
	}
	if c == '~' && l.at(start+1) == '/' {
		if n, in := l.pathLen(start + 1); n > 0 && n+1 > best {
			best, kind, interp = n+1, tHPATH, in
		}
	}
	if c == '<' {
		j := start + 1
		ok := false
		for {
			k := j
			for k < len(l.s) && isPathChar(l.s[k]) {
				k++
			}
			if k == j {
				break
			}
			j = k
			if l.at(j) == '>' {
				ok = true
				j++
				break
			}
			if l.at(j) != '/' {
				break
			}
			j++
		}
		if ok && j-start > best {
			best, kind = j-start, tSPATH
		}
	}
	if isIDStart(c) && c != '_' {
		j := start + 1
		for j < len(l.s) && (isIDChar(l.s[j]) && l.s[j] != '_' && l.s[j] != '\'' || l.s[j] == '+' || l.s[j] == '.') {
			j++
		}
		if l.at(j) == ':' {
			k := j + 1
			for k < len(l.s) && isURIChar(l.s[k]) {
				k++
			}
			if k > j+1 && k-start > best {
				best, kind = k-start, tURI
			}
		}
	}
	if best > 0 {
		l.pos = start + best
		return token{kind: kind, text: l.str[start:l.pos], off: start, end: l.pos, interp: interp}
	}
	for _, op := range opsByFirst[c] {
		if strings.HasPrefix(l.str[start:], op) {
			l.pos = start + len(op)
			switch op {
			case "\"":
				return token{kind: tDQUOTE, text: op, off: start, end: l.pos}
			case "''":
				return token{kind: tINDOPEN, text: op, off: start, end: l.pos}
			case "${":
				return token{kind: tDOLLARCURLY, text: op, off: start, end: l.pos}
			}
			return token{kind: tOP, text: op, off: start, end: l.pos}
		}
	}
	l.errAt(start, "syntax error, unexpected character '%s'", string(c))
	return token{}
}

var ops = []string{"...", "${", "''", "==", "!=", "<=", ">=", "&&", "||", "->", "//", "++",
	"\"", "+", "-", "*", "/", "<", ">", "!", "?", ".", ",", ";", ":", "@", "=", "{", "}", "[", "]", "(", ")"}

// opsByFirst is ops by their first byte, in the order of ops (the first
// match wins): trying all of them was an eighth of parsing's time.
var opsByFirst = func() (t [256][]string) {
	for _, op := range ops {
		t[op[0]] = append(t[op[0]], op)
	}
	return t
}()

// floatLen matches (([1-9][0-9]*\.[0-9]*)|(0?\.[0-9]+))([Ee][+-]?[0-9]+)?
func floatLen(s []byte) int {
	i := 0
	switch {
	case len(s) > 0 && s[0] >= '1' && s[0] <= '9':
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		if i >= len(s) || s[i] != '.' {
			return 0
		}
		i++
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	default:
		if i < len(s) && s[i] == '0' {
			i++
		}
		if i >= len(s) || s[i] != '.' || i+1 >= len(s) || !isDigit(s[i+1]) {
			return 0
		}
		i++
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		k := j
		for k < len(s) && isDigit(s[k]) {
			k++
		}
		if k > j {
			i = k
		}
	}
	return i
}

func parseFloat(s string) (float64, error) { return strconv.ParseFloat(s, 64) }
