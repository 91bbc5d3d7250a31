// Package syntax holds the lexer, parser and syntax tree of the Nix
// language. It knows nothing about evaluation: eval compiles the tree.
package syntax

import (
	"bytes"
	"fmt"
	"strings"
	"unsafe"
)

// Source is one parsed text: a file or an expression given on the command
// line. Positions refer to it so that messages can quote the line.
type Source struct {
	Name string // file path, or «string» / «stdin»
	Text []byte
	// str is Text as a string, the same bytes: the syntax tree's names
	// and literals are substrings of it, and the positions keep Text for
	// the messages, so a copy would keep every file twice (import-many:
	// ~160 bytes a file)
	str string
	// lineStarts are the offsets of the first byte of every line.
	lineStarts []int
}

// NewSource makes a source of text, which it keeps: the caller must not
// change text afterwards.
func NewSource(name string, text []byte) *Source {
	s := &Source{Name: name, Text: text, str: unsafe.String(unsafe.SliceData(text), len(text))}
	// as many as there are lines, not append's slack of up to a quarter
	s.lineStarts = make([]int, 1, 1+bytes.Count(text, []byte{'\n'}))
	for i, c := range text {
		if c == '\n' {
			s.lineStarts = append(s.lineStarts, i+1)
		}
	}
	return s
}

// FromText reports whether s is an expression given as text (-E, stdin)
// rather than a file: Nix names, positions and shows those differently.
func (s *Source) FromText() bool { return s.Name == "«string»" || s.Name == "«stdin»" }

// LineCol turns a byte offset into 1-based line and column.
func (s *Source) LineCol(off int) (int, int) {
	lo, hi := 0, len(s.lineStarts)
	for hi-lo > 1 {
		m := (lo + hi) / 2
		if s.lineStarts[m] <= off {
			lo = m
		} else {
			hi = m
		}
	}
	return lo + 1, off - s.lineStarts[lo] + 1
}

// Line returns the text of a 1-based line without its newline.
func (s *Source) Line(n int) string {
	if n < 1 || n > len(s.lineStarts) {
		return ""
	}
	start := s.lineStarts[n-1]
	end := len(s.Text)
	if n < len(s.lineStarts) {
		end = s.lineStarts[n] - 1
	}
	return strings.TrimRight(string(s.Text[start:end]), "\r")
}

// Pos is a position in a Source. The zero Pos means "no position".
type Pos struct {
	Src *Source
	Off int
}

func (p Pos) IsValid() bool { return p.Src != nil }

func (p Pos) LineCol() (int, int) {
	if p.Src == nil {
		return 0, 0
	}
	return p.Src.LineCol(p.Off)
}

func (p Pos) String() string {
	if p.Src == nil {
		return "«none»"
	}
	l, c := p.LineCol()
	return fmt.Sprintf("%s:%d:%d", p.Src.Name, l, c)
}

// InMessage is p as C++ Nix writes a position inside a message (not in
// an "at" line): "(string)" for an expression from the command line or
// stdin.
func (p Pos) InMessage() string {
	if p.Src != nil && p.Src.FromText() {
		l, c := p.LineCol()
		return fmt.Sprintf("(string):%d:%d", l, c)
	}
	return p.String()
}

// Snippet renders the lines around p with a caret under its column, as
// C++ Nix 2.8 shows where an error happened: the line before and the line
// after too, numbers right-aligned in five columns. It follows Nix's
// reading of them: a file is read line by line up to a newline, so a
// last line without one is not shown (nor anything, when the error is on
// it); an expression from the command line or stdin is split with
// getline, which shows its last line, and an empty line after a final
// newline. Every line ends in a newline; "" when there is nothing to show.
func (p Pos) Snippet() string {
	if p.Src == nil {
		return ""
	}
	l, c := p.LineCol()
	prev, errLine, next, ok := p.Src.codeLines(l)
	if !ok {
		return ""
	}
	var b strings.Builder
	if l > 1 {
		fmt.Fprintf(&b, " %5d| %s\n", l-1, prev)
	}
	fmt.Fprintf(&b, " %5d| %s\n", l, errLine)
	if c > 0 {
		b.WriteString("      |" + strings.Repeat(" ", c) + "^\n")
	}
	if next != nil {
		fmt.Fprintf(&b, " %5d| %s\n", l+1, *next)
	}
	return b.String()
}

// codeLines are the lines Nix shows around line l (see Snippet): ok is
// false when it shows none, next nil when there is no line after.
func (s *Source) codeLines(l int) (prev, errLine string, next *string, ok bool) {
	if l < 1 || l > len(s.lineStarts) {
		return "", "", nil, false
	}
	fromFile := !s.FromText()
	// complete: the line ends in a newline (readLine gets it from a file)
	complete := func(n int) bool { return n < len(s.lineStarts) }
	if fromFile && !complete(l) {
		return "", "", nil, false
	}
	if l > 1 {
		prev = s.Line(l - 1)
	}
	errLine = s.Line(l)
	switch {
	case fromFile:
		if complete(l + 1) {
			n := s.Line(l + 1)
			next = &n
		}
	case l+1 <= len(s.lineStarts):
		// getline after a newline: the next line, or "" after the last
		n := s.Line(l + 1)
		next = &n
	}
	return prev, errLine, next, true
}

// Node is any expression of the syntax tree.
type Node interface{ P() Pos }

type (
	Int struct {
		Pos Pos
		V   int64
	}
	Float struct {
		Pos Pos
		V   float64
	}
	// Str is a string without interpolation.
	Str struct {
		Pos Pos
		V   string
	}
	// Interp is an interpolated string ("a${b}c", ''..'') or, with IsPath,
	// a path with interpolation (./a/${b}).
	Interp struct {
		Pos   Pos
		Parts []Node // *Str or expressions
		// At is where each expression part's ${ begins (a *Str part's
		// entry is unset; nil for paths, whose expression parts are
		// wrapped in an Interp at their ${): C++ Nix reports a part's
		// coercion error there.
		At       []Pos
		IsPath   bool
		Indented bool
	}
	Path struct {
		Pos  Pos
		V    string // as written: ./x, /x, ~/x
		Kind PathKind
	}
	// SPath is <nixpkgs/foo>.
	SPath struct {
		Pos Pos
		V   string // without angle brackets
	}
	Var struct {
		Pos  Pos
		Name string
	}
	Select struct {
		Pos  Pos
		E    Node
		Path []AttrName
		Or   Node // may be nil
	}
	HasAttr struct {
		Pos  Pos
		E    Node
		Path []AttrName
	}
	List struct {
		Pos   Pos
		Items []Node
	}
	Attrs struct {
		Pos     Pos
		Rec     bool
		Attrs   []*AttrDef // static names, in source order
		Dynamic []*DynAttr
	}
	Let struct {
		Pos   Pos
		Attrs *Attrs
		Body  Node
	}
	With struct {
		Pos   Pos
		Attrs Node
		Body  Node
	}
	Assert struct {
		Pos  Pos
		Cond Node
		Body Node
	}
	If struct {
		Pos              Pos
		Cond, Then, Else Node
	}
	Lambda struct {
		Pos     Pos
		Arg     string // simple arg or @-name; "" if none
		Formals *Formals
		Body    Node
		Name    string // attribute or let name, for traces
	}
	Call struct {
		Pos  Pos
		Fn   Node
		Args []Node
	}
	Unary struct {
		Pos Pos
		Op  string // "!" or "-"
		E   Node
	}
	// Binary's Pos is where its left operand begins (a parenthesis
	// included), RPos where its right one does: C++ Nix reports an
	// operator's errors at the first and an operand's coercion of + at
	// the operand's.
	Binary struct {
		Pos  Pos
		Op   string
		L, R Node
		RPos Pos
	}
	// CurPos is __curPos.
	CurPos struct{ Pos Pos }
)

type PathKind int

const (
	PathAbs PathKind = iota
	PathRel
	PathHome
)

// AttrName is one element of an attribute path: a static Name or a
// dynamic expression.
type AttrName struct {
	Name string
	Dyn  Node
	Pos  Pos
}

// AttrDef is one static attribute of a set or let.
type AttrDef struct {
	Name string
	Pos  Pos
	E    Node
	// Inherited: `inherit x;` (E is a Var looked up outside a rec scope).
	Inherited bool
	// InheritFrom: `inherit (e) x;` (E is a Select on From).
	InheritFrom Node
}

type DynAttr struct {
	Name Node
	E    Node
	Pos  Pos
}

type Formals struct {
	List     []Formal
	Ellipsis bool
}

type Formal struct {
	Name    string
	Default Node
	Pos     Pos
}

func (n *Int) P() Pos     { return n.Pos }
func (n *Float) P() Pos   { return n.Pos }
func (n *Str) P() Pos     { return n.Pos }
func (n *Interp) P() Pos  { return n.Pos }
func (n *Path) P() Pos    { return n.Pos }
func (n *SPath) P() Pos   { return n.Pos }
func (n *Var) P() Pos     { return n.Pos }
func (n *Select) P() Pos  { return n.Pos }
func (n *HasAttr) P() Pos { return n.Pos }
func (n *List) P() Pos    { return n.Pos }
func (n *Attrs) P() Pos   { return n.Pos }
func (n *Let) P() Pos     { return n.Pos }
func (n *With) P() Pos    { return n.Pos }
func (n *Assert) P() Pos  { return n.Pos }
func (n *If) P() Pos      { return n.Pos }
func (n *Lambda) P() Pos  { return n.Pos }
func (n *Call) P() Pos    { return n.Pos }
func (n *Unary) P() Pos   { return n.Pos }
func (n *Binary) P() Pos  { return n.Pos }
func (n *CurPos) P() Pos  { return n.Pos }
