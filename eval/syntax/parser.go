package syntax

import (
	"fmt"
	"hash/maphash"
	"strconv"
	"strings"
)

// MaxDepth bounds the nesting of expressions so that a hostile input
// gives a parse error instead of exhausting the stack.
const MaxDepth = 5000

// Parse parses a whole Nix expression.
func Parse(src *Source) (n Node, err error) {
	p := &parser{lx: lexer{src: src, s: src.Text, str: src.str}}
	defer func() {
		if r := recover(); r != nil {
			pe, ok := r.(*ParseError)
			if !ok {
				panic(r)
			}
			n, err = nil, pe
		}
	}()
	e := p.expr()
	t := p.lx.next()
	if t.kind != tEOF {
		p.lx.errAt(t.off, "syntax error, unexpected %s, expecting end of file", t)
	}
	return e, nil
}

type parser struct {
	lx    lexer
	depth int
	// index is the attributes of the sets with bigSet or more, by name
	index map[*Attrs]nameIndex
	seed  maphash.Seed
}

func (p *parser) pos(off int) Pos { return Pos{p.lx.src, off} }

func (p *parser) unexpected(t token) {
	p.lx.errAt(t.off, "syntax error, unexpected %s", t)
}

func (p *parser) expect(op string) token {
	t := p.lx.next()
	if t.kind != tOP || t.text != op {
		p.lx.errAt(t.off, "syntax error, unexpected %s, expecting '%s'", t, op)
	}
	return t
}

func (p *parser) isOp(t token, op string) bool { return t.kind == tOP && t.text == op }
func (p *parser) isKw(t token, kw string) bool { return t.kind == tID && t.text == kw }

var keywords = map[string]bool{"if": true, "then": true, "else": true, "assert": true, "with": true,
	"let": true, "in": true, "rec": true, "inherit": true, "or": true}

func (p *parser) enter(off int) {
	p.depth++
	if p.depth > MaxDepth {
		p.lx.errAt(off, "expression nested too deeply (more than %d levels)", MaxDepth)
	}
}

func (p *parser) expr() Node {
	t := p.lx.peekTok()
	p.enter(t.off)
	defer func() { p.depth-- }()
	switch {
	case t.kind == tID && !keywords[t.text]:
		// `x: body` or `x @ { ... }: body`
		save := p.lx
		p.lx.next()
		n := p.lx.peekTok()
		if p.isOp(n, ":") {
			p.lx.next()
			body := p.expr()
			return &Lambda{Pos: p.pos(t.off), Arg: t.text, Body: body}
		}
		if p.isOp(n, "@") {
			p.lx.next()
			open := p.expect("{")
			f := p.formals(open.off)
			for _, fm := range f.List {
				if fm.Name == t.text {
					p.lx.errAt(t.off, "duplicate formal function argument '%s'", t.text)
				}
			}
			p.expect(":")
			body := p.expr()
			return &Lambda{Pos: p.pos(t.off), Arg: t.text, Formals: f, Body: body}
		}
		p.lx = save
	case p.isOp(t, "{"):
		if p.looksLikeFormals() {
			p.lx.next()
			f := p.formals(t.off)
			arg := ""
			if p.isOp(p.lx.peekTok(), "@") {
				p.lx.next()
				id := p.lx.next()
				if id.kind != tID || keywords[id.text] {
					p.unexpected(id)
				}
				arg = id.text
				for _, fm := range f.List {
					if fm.Name == arg {
						p.lx.errAt(id.off, "duplicate formal function argument '%s'", arg)
					}
				}
			}
			p.expect(":")
			body := p.expr()
			return &Lambda{Pos: p.pos(t.off), Arg: arg, Formals: f, Body: body}
		}
	case p.isKw(t, "assert"):
		p.lx.next()
		c := p.expr()
		p.expect(";")
		return &Assert{Pos: p.pos(t.off), Cond: c, Body: p.expr()}
	case p.isKw(t, "with"):
		p.lx.next()
		a := p.expr()
		p.expect(";")
		return &With{Pos: p.pos(t.off), Attrs: a, Body: p.expr()}
	case p.isKw(t, "let"):
		save := p.lx
		p.lx.next()
		if p.isOp(p.lx.peekTok(), "{") {
			p.lx = save
			break // legacy let { ... }: an expr_simple
		}
		a := p.binds(t.off, "in", true)
		p.lx.next() // "in"
		body := p.expr()
		return &Let{Pos: p.pos(t.off), Attrs: a, Body: body}
	case p.isKw(t, "if"):
		p.lx.next()
		c := p.expr()
		if n := p.lx.next(); !p.isKw(n, "then") {
			p.lx.errAt(n.off, "syntax error, unexpected %s, expecting THEN", n)
		}
		th := p.expr()
		if n := p.lx.next(); !p.isKw(n, "else") {
			p.lx.errAt(n.off, "syntax error, unexpected %s, expecting ELSE", n)
		}
		el := p.expr()
		return &If{Pos: p.pos(t.off), Cond: c, Then: th, Else: el}
	}
	return p.binary(0)
}

// looksLikeFormals decides, at a "{", between a set pattern and an attrset.
func (p *parser) looksLikeFormals() bool {
	save := p.lx
	defer func() { p.lx = save }()
	p.lx.next()
	t := p.lx.next()
	switch {
	case p.isOp(t, "}"):
		n := p.lx.next()
		return p.isOp(n, ":") || p.isOp(n, "@")
	case p.isOp(t, "..."):
		return true
	case t.kind == tID && !keywords[t.text] || p.isKw(t, "or"):
		n := p.lx.next()
		if p.isOp(n, ",") || p.isOp(n, "?") {
			return true
		}
		if p.isOp(n, "}") {
			n2 := p.lx.next()
			return p.isOp(n2, ":") || p.isOp(n2, "@")
		}
	}
	return false
}

func (p *parser) formals(off int) *Formals {
	f := &Formals{}
	seen := map[string]bool{}
	for {
		t := p.lx.next()
		if p.isOp(t, "}") {
			break
		}
		if p.isOp(t, "...") {
			f.Ellipsis = true
			if n := p.lx.next(); !p.isOp(n, "}") {
				p.unexpected(n)
			}
			break
		}
		if t.kind != tID || keywords[t.text] {
			p.unexpected(t)
		}
		fm := Formal{Name: t.text, Pos: p.pos(t.off)}
		if seen[t.text] {
			p.lx.errAt(t.off, "duplicate formal function argument '%s'", t.text)
		}
		seen[t.text] = true
		n := p.lx.next()
		if p.isOp(n, "?") {
			fm.Default = p.expr()
			n = p.lx.next()
		}
		f.List = append(f.List, fm)
		if p.isOp(n, "}") {
			break
		}
		if !p.isOp(n, ",") {
			p.lx.errAt(n.off, "syntax error, unexpected %s, expecting ',' or '}'", n)
		}
	}
	return f
}

type opInfo struct {
	prec  int
	assoc int // 0 left, 1 right, 2 none
}

var binops = map[string]opInfo{
	"->": {1, 1}, "||": {2, 0}, "&&": {3, 0}, "==": {4, 2}, "!=": {4, 2},
	"<": {5, 2}, ">": {5, 2}, "<=": {5, 2}, ">=": {5, 2}, "//": {6, 1},
	"+": {8, 0}, "-": {8, 0}, "*": {9, 0}, "/": {9, 0}, "++": {10, 1}, "?": {11, 2},
}

func (p *parser) binary(minPrec int) Node {
	t := p.lx.peekTok()
	start := t.off
	saved := p.depth
	p.enter(t.off)
	// every operator of a chain (a + b + c ...) nests the tree one level
	// deeper, so it counts towards MaxDepth too
	defer func() { p.depth = saved }()
	var lhs Node
	switch {
	case p.isOp(t, "!"):
		p.lx.next()
		lhs = &Unary{Pos: p.pos(t.off), Op: "!", E: p.binary(8)}
	case p.isOp(t, "-"):
		p.lx.next()
		lhs = &Unary{Pos: p.pos(t.off), Op: "-", E: p.binary(13)}
	default:
		lhs = p.app()
	}
	lastPrec := -1
	for {
		t := p.lx.peekTok()
		if t.kind != tOP {
			return lhs
		}
		info, ok := binops[t.text]
		if !ok || info.prec < minPrec {
			return lhs
		}
		if info.assoc == 2 && info.prec == lastPrec {
			p.unexpected(t)
		}
		p.lx.next()
		p.enter(t.off)
		if t.text == "?" {
			lhs = &HasAttr{Pos: p.pos(t.off), E: lhs, Path: p.attrPath()}
		} else {
			next := info.prec + 1
			if info.assoc == 1 {
				next = info.prec
			}
			rstart := p.lx.peekTok().off
			rhs := p.binary(next)
			lhs = &Binary{Pos: p.pos(start), Op: t.text, L: lhs, R: rhs, RPos: p.pos(rstart)}
		}
		lastPrec = info.prec
	}
}

func (p *parser) startsSimple(t token) bool {
	switch t.kind {
	case tID:
		return !keywords[t.text] || t.text == "rec" || t.text == "let"
	case tINT, tFLOAT, tPATH, tHPATH, tSPATH, tURI, tDQUOTE, tINDOPEN:
		return true
	case tOP:
		return t.text == "(" || t.text == "[" || t.text == "{"
	}
	return false
}

func (p *parser) app() Node {
	// a call is where its first token is, as in C++ Nix: `(f) x` at the
	// parenthesis
	start := p.lx.peekTok().off
	fn := p.selectExpr()
	var args []Node
	for {
		t := p.lx.peekTok()
		if !p.startsSimple(t) {
			break
		}
		if p.isKw(t, "let") {
			save := p.lx
			p.lx.next()
			isLegacy := p.isOp(p.lx.peekTok(), "{")
			p.lx = save
			if !isLegacy {
				break
			}
		}
		args = append(args, p.selectExpr())
	}
	if len(args) == 0 {
		return fn
	}
	return &Call{Pos: p.pos(start), Fn: fn, Args: args}
}

func (p *parser) selectExpr() Node {
	start := p.lx.peekTok().off
	e := p.simple()
	t := p.lx.peekTok()
	if p.isOp(t, ".") {
		p.lx.next()
		path := p.attrPath()
		s := &Select{Pos: p.pos(start), E: e, Path: path}
		if p.isKw(p.lx.peekTok(), "or") {
			p.lx.next()
			s.Or = p.selectExpr()
		}
		return s
	}
	if p.isKw(t, "or") {
		// Legacy: `f or` applies f to a variable named "or".
		p.lx.next()
		return &Call{Pos: p.pos(start), Fn: e, Args: []Node{&Var{Pos: p.pos(t.off), Name: "or"}}}
	}
	return e
}

func (p *parser) attrPath() []AttrName {
	var path []AttrName
	for {
		path = append(path, p.attrName())
		if !p.isOp(p.lx.peekTok(), ".") {
			return path
		}
		p.lx.next()
	}
}

func (p *parser) attrName() AttrName {
	t := p.lx.next()
	switch {
	case t.kind == tID && (!keywords[t.text] || t.text == "or"):
		return AttrName{Name: t.text, Pos: p.pos(t.off)}
	case t.kind == tDQUOTE:
		s := p.stringRest(t.off)
		if str, ok := s.(*Str); ok {
			return AttrName{Name: str.V, Pos: p.pos(t.off)}
		}
		return AttrName{Dyn: s, Pos: p.pos(t.off)}
	case t.kind == tDOLLARCURLY:
		e := p.expr()
		p.expect("}")
		if s, ok := e.(*Str); ok {
			return AttrName{Name: s.V, Pos: p.pos(t.off)}
		}
		return AttrName{Dyn: e, Pos: p.pos(t.off)}
	}
	p.unexpected(t)
	return AttrName{}
}

func (p *parser) simple() Node {
	t := p.lx.next()
	p.enter(t.off)
	defer func() { p.depth-- }()
	pos := p.pos(t.off)
	switch t.kind {
	case tID:
		switch t.text {
		case "rec":
			o := p.expect("{")
			a := p.binds(o.off, "}", false)
			p.lx.next()
			a.Rec = true
			a.Pos = pos
			return a
		case "let":
			o := p.expect("{")
			a := p.binds(o.off, "}", false)
			p.lx.next()
			a.Rec = true
			// let { ...; body = e; } is rec { ... }.body
			return &Select{Pos: pos, E: a, Path: []AttrName{{Name: "body", Pos: pos}}}
		case "__curPos":
			return &CurPos{Pos: pos}
		}
		if keywords[t.text] {
			p.unexpected(t)
		}
		return &Var{Pos: pos, Name: t.text}
	case tINT:
		v, err := strconv.ParseInt(t.text, 10, 64)
		if err != nil {
			p.lx.errAt(t.off, "invalid integer '%s'", t.text)
		}
		return &Int{Pos: pos, V: v}
	case tFLOAT:
		v, err := parseFloat(t.text)
		if err != nil && !strings.Contains(err.Error(), "range") {
			p.lx.errAt(t.off, "invalid float '%s'", t.text)
		}
		return &Float{Pos: pos, V: v}
	case tPATH, tHPATH:
		return p.path(t)
	case tSPATH:
		return &SPath{Pos: pos, V: t.text[1 : len(t.text)-1]}
	case tURI:
		return &Str{Pos: pos, V: t.text}
	case tDQUOTE:
		return p.stringRest(t.off)
	case tINDOPEN:
		return p.indString(t.off)
	case tOP:
		switch t.text {
		case "(":
			e := p.expr()
			p.expect(")")
			return e
		case "[":
			l := &List{Pos: pos}
			for {
				n := p.lx.peekTok()
				if p.isOp(n, "]") {
					p.lx.next()
					return l
				}
				if !p.startsSimple(n) {
					p.unexpected(n)
				}
				l.Items = append(l.Items, p.selectExpr())
			}
		case "{":
			a := p.binds(t.off, "}", false)
			p.lx.next()
			return a
		}
	}
	p.unexpected(t)
	return nil
}

func (p *parser) path(t token) Node {
	pos := p.pos(t.off)
	kind := PathRel
	switch {
	case t.kind == tHPATH:
		kind = PathHome
	case strings.HasPrefix(t.text, "/"):
		kind = PathAbs
	}
	if !t.interp {
		if strings.HasSuffix(t.text, "/") && len(t.text) > 1 {
			p.lx.errAt(t.off, "path '%s' has a trailing slash", t.text)
		}
		return &Path{Pos: pos, V: t.text, Kind: kind}
	}
	parts := []Node{&Path{Pos: pos, V: t.text, Kind: kind}}
	l := &p.lx
	for {
		if l.at(l.pos) == '$' && l.at(l.pos+1) == '{' {
			off := l.pos
			l.pos += 2
			e := p.expr()
			p.expect("}")
			parts = append(parts, &Interp{Pos: p.pos(off), Parts: []Node{e}})
			continue
		}
		start := l.pos
		for l.pos < len(l.s) && (isPathChar(l.s[l.pos]) || l.s[l.pos] == '/' && l.pos+1 < len(l.s) && (isPathChar(l.s[l.pos+1]) || l.s[l.pos+1] == '$')) {
			l.pos++
		}
		if l.pos == start {
			break
		}
		parts = append(parts, &Str{Pos: p.pos(start), V: l.str[start:l.pos]})
	}
	if l.at(l.pos) == '/' {
		l.errAt(l.pos, "path has a trailing slash")
	}
	return &Interp{Pos: pos, Parts: parts, IsPath: true}
}

// stringRest parses a "..." string after its opening quote. A literal
// part without escapes is a substring of the source, which the
// positions keep anyway; the interpolations are the parts themselves
// (marked by interp), not wrapped: 0.45 KB of garbage less for each
// import-many file with its two strings.
func (p *parser) stringRest(open int) Node {
	l := &p.lx
	var parts []Node
	interp := false
	var buf []byte  // the part's text up to start, when it has escapes
	start := l.pos  // where the part's text not yet in buf begins
	partAt := l.pos // where the part begins
	var at []Pos    // Interp.At, once there is an expression part
	flush := func() {
		switch {
		case buf != nil:
			buf = append(buf, l.s[start:l.pos]...)
			parts = append(parts, &Str{Pos: p.pos(partAt), V: string(buf)})
			buf = nil
		case l.pos > start:
			parts = append(parts, &Str{Pos: p.pos(partAt), V: l.str[start:l.pos]})
		}
	}
	escaped := func(b byte, skip int) {
		buf = append(append(buf, l.s[start:l.pos]...), b)
		l.pos += skip
		start = l.pos
	}
	// where C++ Nix's lexer last began a lexeme (the quote, a `}` ending
	// an interpolation, a run of text), which is where it reports the end
	// of the file
	lastLex, inText := open, false
	for {
		if l.pos >= len(l.s) {
			l.errAt(lastLex, "syntax error, unexpected end of file, expecting '\"'")
		}
		if l.s[l.pos] == '\\' && l.pos+1 >= len(l.s) {
			// Nix's lexer makes a lexeme of its own of a backslash
			// ending the file: a second STR after text
			if inText {
				l.errAt(l.pos, "syntax error, unexpected STR, expecting '\"'")
			}
			l.errAt(l.pos, "syntax error, unexpected end of file, expecting '\"'")
		}
		c := l.s[l.pos]
		if !inText && c != '"' && !(c == '$' && l.at(l.pos+1) == '{') {
			lastLex, inText = l.pos, true
		}
		switch {
		case c == '"':
			flush()
			l.lastLex = l.pos
			l.pos++
			if interp {
				return &Interp{Pos: p.pos(open), Parts: parts, At: at}
			}
			if len(parts) == 0 {
				return &Str{Pos: p.pos(open)}
			}
			s := parts[0].(*Str) // the one part: no interpolation split it
			s.Pos = p.pos(open)
			return s
		case c == '\\':
			escaped(unescape(l.s[l.pos+1]), 2)
		case c == '$' && l.at(l.pos+1) == '{':
			flush()
			off := l.pos
			l.pos += 2
			e := p.expr()
			lastLex, inText = p.expect("}").off, false
			at = append(at, make([]Pos, len(parts)-len(at))...)
			parts = append(parts, e)
			at = append(at, p.pos(off))
			interp = true
			start, partAt = l.pos, l.pos
		case c == '$' && l.at(l.pos+1) == '$':
			l.pos += 2 // as written
		case c == '\r':
			skip := 1
			if l.at(l.pos+1) == '\n' {
				skip = 2
			}
			escaped('\n', skip)
		default:
			l.pos++
		}
	}
}

func unescape(c byte) byte {
	switch c {
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	}
	return c
}

type indPart struct {
	text   []byte
	indent bool // literal text whose leading spaces count as indentation
	e      Node
	pos    Pos
}

func (p *parser) indString(open int) Node {
	l := &p.lx
	// the opening '' swallows spaces up to and including a first newline
	j := l.pos
	for j < len(l.s) && l.s[j] == ' ' {
		j++
	}
	if l.at(j) == '\n' {
		l.pos = j + 1
	} else if l.at(j) == '\r' && l.at(j+1) == '\n' {
		l.pos = j + 2
	}
	var parts []indPart
	lit := func(b []byte, ind bool) {
		if ind && len(parts) > 0 && parts[len(parts)-1].indent && parts[len(parts)-1].e == nil {
			parts[len(parts)-1].text = append(parts[len(parts)-1].text, b...)
			return
		}
		parts = append(parts, indPart{text: append([]byte(nil), b...), indent: ind, pos: p.pos(l.pos)})
	}
	// where C++ Nix's lexer last began a lexeme, for the end of the file
	// (see the string above): the '' opening, a run of text (IND_STR:
	// lines, `$` or `'` not starting anything), an escape, a `}`
	lastLex, inText := open, false
	special := func() { lastLex, inText = l.pos, false }
	for {
		if l.pos >= len(l.s) {
			l.errAt(lastLex, "syntax error, unexpected end of file, expecting IND_STR or DOLLAR_CURLY or IND_STRING_CLOSE")
		}
		c := l.s[l.pos]
		plain := c != '\'' && c != '$' || c == '$' && l.at(l.pos+1) != '{' && l.at(l.pos+1) != '\'' ||
			c == '\'' && l.at(l.pos+1) != '\'' && l.at(l.pos+1) != '$'
		if plain && !inText {
			lastLex, inText = l.pos, true
		} else if !plain {
			special()
		}
		switch {
		case c == '\'' && l.at(l.pos+1) == '\'':
			switch l.at(l.pos + 2) {
			case '$':
				lit([]byte("$"), false)
				l.pos += 3
			case '\'':
				lit([]byte("''"), false)
				l.pos += 3
			case '\\':
				if l.pos+3 >= len(l.s) {
					l.errAt(lastLex, "syntax error, unexpected end of file, expecting IND_STR or DOLLAR_CURLY or IND_STRING_CLOSE")
				}
				e := l.s[l.pos+3]
				if e == '\r' && l.at(l.pos+4) == '\n' {
					lit([]byte("\n"), false)
					l.pos++
				} else {
					lit([]byte{unescape(e)}, false)
				}
				l.pos += 4
			default:
				l.lastLex = l.pos
				l.pos += 2
				return stripIndentation(p.pos(open), parts)
			}
		case c == '\'':
			if l.at(l.pos+1) == '$' {
				lit([]byte("'"), false)
			} else {
				lit([]byte("'"), true)
			}
			l.pos++
		case c == '$' && l.at(l.pos+1) == '{':
			off := l.pos
			l.pos += 2
			e := p.expr()
			lastLex, inText = p.expect("}").off, false
			parts = append(parts, indPart{e: e, pos: p.pos(off)})
		case c == '$' && l.at(l.pos+1) == '$':
			lit([]byte("$$"), true)
			l.pos += 2
		case c == '$' && l.at(l.pos+1) == '\'':
			lit([]byte("$"), false)
			l.pos++
		default:
			// the run of text up to the next ' or $ at once: a part's
			// text grown a byte at a time was most of what parsing a
			// script of many interpolations allocated
			j := l.pos + 1
			for j < len(l.s) && l.s[j] != '\'' && l.s[j] != '$' {
				j++
			}
			lit(l.s[l.pos:j], true)
			l.pos = j
		}
	}
}

func stripIndentation(pos Pos, es []indPart) Node {
	if len(es) == 0 {
		return &Str{Pos: pos}
	}
	atStart := true
	minIndent := 1000000
	cur := 0
	for _, e := range es {
		if e.e != nil || !e.indent {
			if atStart {
				atStart = false
				minIndent = min(minIndent, cur)
			}
			continue
		}
		for _, c := range e.text {
			if atStart {
				switch c {
				case ' ':
					cur++
				case '\n':
					cur = 0
				default:
					atStart = false
					minIndent = min(minIndent, cur)
				}
			} else if c == '\n' {
				atStart = true
				cur = 0
			}
		}
	}
	var out []Node
	var at []Pos // Interp.At
	atStart = true
	dropped := 0
	for i, e := range es {
		if e.e != nil {
			atStart = false
			dropped = 0
			for len(at) < len(out) { // (not a slice of zeros made for each)
				at = append(at, Pos{})
			}
			out = append(out, e.e)
			at = append(at, e.pos)
			continue
		}
		s2 := make([]byte, 0, len(e.text))
		for _, c := range e.text {
			if atStart {
				switch c {
				case ' ':
					if dropped >= minIndent {
						s2 = append(s2, c)
					}
					dropped++
				case '\n':
					dropped = 0
					s2 = append(s2, c)
				default:
					atStart = false
					dropped = 0
					s2 = append(s2, c)
				}
			} else {
				s2 = append(s2, c)
				if c == '\n' {
					atStart = true
				}
			}
		}
		if i == len(es)-1 {
			if p := strings.LastIndexByte(string(s2), '\n'); p >= 0 && strings.Trim(string(s2[p+1:]), " ") == "" {
				s2 = s2[:p+1]
			}
		}
		if len(out) > 0 {
			if prev, ok := out[len(out)-1].(*Str); ok {
				prev.V += string(s2)
				continue
			}
		}
		out = append(out, &Str{Pos: e.pos, V: string(s2)})
	}
	if len(out) == 1 {
		if s, ok := out[0].(*Str); ok {
			s.Pos = pos
			return s
		}
	}
	return &Interp{Pos: pos, Parts: out, At: at, Indented: true}
}

// binds parses bindings up to (not including) the terminator token.
func (p *parser) binds(off int, term string, isLet bool) *Attrs {
	a := &Attrs{Pos: p.pos(off)}
	for {
		t := p.lx.peekTok()
		if term == "in" && p.isKw(t, "in") || term == "}" && p.isOp(t, "}") {
			return a
		}
		if p.isKw(t, "inherit") {
			// each name inherited is at itself, as the language suite has
			// it (eval-okay-inherit-attr-pos; C++ Nix 2.8 puts them all
			// right after `inherit` or the `)`)
			p.lx.next()
			var from Node
			if p.isOp(p.lx.peekTok(), "(") {
				p.lx.next()
				from = p.expr()
				p.expect(")")
			}
			for {
				n := p.lx.peekTok()
				if p.isOp(n, ";") {
					p.lx.next()
					break
				}
				an := p.attrName()
				if an.Dyn != nil {
					p.lx.errAt(n.off, "dynamic attributes not allowed in inherit")
				}
				if prev := p.find(a, an.Name); prev != nil {
					p.dupAttr(an.Name, an.Pos, prev.Pos)
				}
				def := &AttrDef{Name: an.Name, Pos: an.Pos}
				if from != nil {
					def.InheritFrom = from
					def.E = &Select{Pos: an.Pos, E: from, Path: []AttrName{{Name: an.Name, Pos: an.Pos}}}
				} else {
					def.Inherited = true
					def.E = &Var{Pos: an.Pos, Name: an.Name}
				}
				p.addDef(a, def)
			}
			continue
		}
		if t.kind == tEOF {
			p.lx.errAt(t.off, "syntax error, unexpected end of file")
		}
		// most bindings name one attribute: its path on the stack, not
		// a 48-byte allocation for each
		var one [1]AttrName
		one[0] = p.attrName()
		path := one[:]
		if p.isOp(p.lx.peekTok(), ".") {
			p.lx.next()
			path = append(path[:1:1], p.attrPath()...)
		}
		if t := p.lx.next(); !p.isOp(t, "=") {
			p.lx.errAt(t.off, "syntax error, unexpected %s, expecting '.' or '='", t)
		}
		e := p.expr()
		p.expect(";")
		if isLet && path[0].Dyn != nil {
			p.lx.errAt(path[0].Pos.Off, "dynamic attributes not allowed in let")
		}
		p.addAttr(a, path, e, path[0].Pos)
	}
}

// bigSet is how many attributes a set has before the parser indexes
// them by name: each new one is checked against the ones before, and a
// search of them all made a set of 25,000 attributes (all-packages.nix
// has about as many) a second of parsing, 100,000 half a minute.
const bigSet = 16

// nameIndex finds the attributes of a big set by a hash of their name:
// the first attribute with each hash (a collision, with a different
// name, falls back to the search). A map by name took 74 bytes per
// attribute at 50,000, more than the attribute itself.
type nameIndex map[uint64]int32

// find is the attribute name of set a defines, nil if none.
func (p *parser) find(a *Attrs, name string) *AttrDef {
	if len(a.Attrs) >= bigSet {
		i, ok := p.index[a][maphash.String(p.seed, name)]
		if !ok {
			return nil
		}
		if d := a.Attrs[i]; d.Name == name {
			return d
		}
	}
	return a.find(name)
}

// addDef adds d to a's attributes (and to its index once it has one).
func (p *parser) addDef(a *Attrs, d *AttrDef) {
	a.Attrs = append(a.Attrs, d)
	switch n := len(a.Attrs); {
	case n > bigSet:
		m := p.index[a]
		if h := maphash.String(p.seed, d.Name); !hasKey(m, h) {
			m[h] = int32(n - 1)
		}
	case n == bigSet:
		if p.index == nil {
			p.index, p.seed = map[*Attrs]nameIndex{}, maphash.MakeSeed()
		}
		m := make(nameIndex, 2*bigSet)
		for i, x := range a.Attrs {
			if h := maphash.String(p.seed, x.Name); !hasKey(m, h) {
				m[h] = int32(i)
			}
		}
		p.index[a] = m
	}
}

func hasKey(m nameIndex, h uint64) bool {
	_, ok := m[h]
	return ok
}

func (a *Attrs) find(name string) *AttrDef {
	for _, d := range a.Attrs {
		if d.Name == name {
			return d
		}
	}
	return nil
}

func (p *parser) dupAttr(name string, pos, prev Pos) {
	panic(&ParseError{Pos: pos, Msg: fmt.Sprintf("attribute '%s' already defined at %s", name, prev.InMessage())})
}

func pathString(path []AttrName) string {
	var b []string
	for _, n := range path {
		if n.Dyn != nil {
			b = append(b, "\"${...}\"")
		} else {
			b = append(b, n.Name)
		}
	}
	return strings.Join(b, ".")
}

// addAttr defines path = e in a. Every attribute the path defines is at
// pos, where the binding starts, as C++ Nix 2.8 has it (unsafeGetAttrPos
// "b" of `a.b = 1;` is at the a).
func (p *parser) addAttr(a *Attrs, path []AttrName, e Node, pos Pos) {
	i := 0
	for ; i+1 < len(path); i++ {
		n := path[i]
		if n.Dyn == nil {
			if d := p.find(a, n.Name); d != nil {
				a2, ok := d.E.(*Attrs)
				if d.Inherited || d.InheritFrom != nil || !ok {
					p.dupAttr(pathString(path), pos, d.Pos)
				}
				a = a2
			} else {
				nested := &Attrs{Pos: n.Pos}
				p.addDef(a, &AttrDef{Name: n.Name, Pos: pos, E: nested})
				a = nested
			}
		} else {
			nested := &Attrs{Pos: n.Pos}
			a.Dynamic = append(a.Dynamic, &DynAttr{Name: n.Dyn, E: nested, Pos: pos})
			a = nested
		}
	}
	last := path[i]
	if last.Dyn != nil {
		a.Dynamic = append(a.Dynamic, &DynAttr{Name: last.Dyn, E: e, Pos: pos})
		return
	}
	if d := p.find(a, last.Name); d != nil {
		ae, ok1 := e.(*Attrs)
		ja, ok2 := d.E.(*Attrs)
		if ok1 && ok2 && !d.Inherited && d.InheritFrom == nil {
			for _, ad := range ae.Attrs {
				if prev := p.find(ja, ad.Name); prev != nil {
					p.dupAttr(ad.Name, ad.Pos, prev.Pos)
				}
				p.addDef(ja, ad)
			}
			return
		}
		p.dupAttr(pathString(path), pos, d.Pos)
	}
	// the name goes to the lambdas of a curried function too (`f = a:
	// b: …`: the inner one is 'f' in messages), as Nix's setName passes
	// it on to a body that is a lambda
	for l, ok := e.(*Lambda); ok && l.Name == ""; l, ok = l.Body.(*Lambda) {
		l.Name = last.Name
	}
	p.addDef(a, &AttrDef{Name: last.Name, Pos: pos, E: e})
}
