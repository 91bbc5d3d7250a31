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

// Snippet renders the line of p with a caret under the column, the way Nix
// shows where an error happened.
func (p Pos) Snippet() string {
	if p.Src == nil {
		return ""
	}
	l, c := p.LineCol()
	line := p.Src.Line(l)
	num := fmt.Sprint(l)
	pad := strings.Repeat(" ", len(num))
	caret := strings.Repeat(" ", max(c-1, 0)) + "^"
	return fmt.Sprintf("     %s| %s\n     %s| %s\n", num, line, pad, caret)
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
