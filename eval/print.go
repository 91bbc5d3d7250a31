package eval

import (
	"math"
	"strconv"
	"strings"

	"github.com/tvix-go/tvix/eval/syntax"
)

// formatFloat prints like C++ ostream with default precision (%g, 6).
func formatFloat(f float64) string {
	if math.IsInf(f, 1) {
		return "inf"
	}
	if math.IsInf(f, -1) {
		return "-inf"
	}
	if math.IsNaN(f) {
		return "nan"
	}
	// C prints at least two exponent digits, as Go does.
	return strconv.FormatFloat(f, 'g', 6, 64)
}

// PrintValue renders a value as nix-instantiate --eval prints it. With
// strict unset, unevaluated thunks print as <CODE>.
func PrintValue(ev *Evaluator, v Value, strict bool) string {
	var b strings.Builder
	p := &printer{ev: ev, b: &b, strict: strict, seen: map[any]bool{}}
	p.print(v, nil)
	return b.String()
}

// PrintLazy prints v as nix-instantiate --eval without --strict and
// builtins.trace do: also the members C++ Nix would still hold as thunks
// where this evaluator has values (functions, builtins, empty sets and lists)
// print as <CODE> (see member).
func PrintLazy(ev *Evaluator, v Value) string {
	var b strings.Builder
	p := &printer{ev: ev, b: &b, lazy: true, seen: map[any]bool{}}
	p.print(v, nil)
	return b.String()
}

type printer struct {
	ev     *Evaluator
	b      *strings.Builder
	strict bool
	lazy   bool // see PrintLazy
	seen   map[any]bool
}

// print writes v; slot is the thunk v was reached through, standing in
// for the Value cell C++ Nix uses to recognise repeated small lists.
func (p *printer) print(v Value, slot *Thunk) {
	if t, ok := v.(*Thunk); ok {
		if !t.done() && !p.strict {
			p.b.WriteString("<CODE>")
			return
		}
		slot = t
		v = p.ev.Force(t)
	}
	switch x := v.(type) {
	case Null:
		p.b.WriteString("null")
	case Bool:
		if x {
			p.b.WriteString("true")
		} else {
			p.b.WriteString("false")
		}
	case Int:
		p.b.WriteString(strconv.FormatInt(int64(x), 10))
	case Float:
		p.b.WriteString(formatFloat(float64(x)))
	case *String:
		p.b.WriteString(QuoteString(x.S))
	case Path:
		p.b.WriteString(string(x))
	case *List:
		if len(x.Items) > 0 {
			var key any = x
			if len(x.Items) <= 2 {
				if slot != nil {
					key = slot
				} else {
					key = nil
				}
			}
			if key != nil {
				if p.seen[key] {
					p.b.WriteString("«repeated»")
					return
				}
				p.seen[key] = true
			}
		}
		p.b.WriteString("[ ")
		for _, it := range x.Items {
			p.member(it)
			p.b.WriteByte(' ')
		}
		p.b.WriteString("]")
	case *Attrs:
		if x.Len() > 0 {
			if p.seen[x] {
				p.b.WriteString("«repeated»")
				return
			}
			p.seen[x] = true
		}
		p.b.WriteString("{ ")
		for _, a := range x.All() {
			p.b.WriteString(printAttrName(a.Name()))
			p.b.WriteString(" = ")
			p.member(a.Val)
			p.b.WriteString("; ")
		}
		p.b.WriteString("}")
	case *Lambda:
		p.b.WriteString("<LAMBDA>")
	case *PrimOp:
		p.b.WriteString("<PRIMOP>")
	case *PrimOpApp:
		p.b.WriteString("<PRIMOP-APP>")
	default:
		p.b.WriteString("<CODE>")
	}
}

// member prints a member of a list or set. Not strict, C++ Nix prints
// <CODE> for every member still a thunk, and it makes thunks of all
// expressions but constants and variables; here functions, builtins,
// empty sets and lists are values from the start, so as members they
// print as the thunks Nix would have, unless forced (seq'ing one is
// rare; printing a set of functions is not).
func (p *printer) member(v Value) {
	if p.lazy && lazyMember(v) {
		p.b.WriteString("<CODE>")
		return
	}
	p.print(v, nil)
}

// lazyMember tells the members that are values here but thunks in C++
// Nix until forced: functions, builtins, empty sets and lists.
func lazyMember(v Value) bool {
	switch x := v.(type) {
	case *Lambda, *PrimOp, *PrimOpApp:
		return true
	case *Attrs:
		return x.Len() == 0
	case *List:
		return len(x.Items) == 0
	}
	return false
}

func printAttrName(s string) string {
	if s == "" {
		return `""`
	}
	ok := isIdentStart(s[0])
	for i := 1; ok && i < len(s); i++ {
		c := s[i]
		ok = isIdentStart(c) || c >= '0' && c <= '9' || c == '\'' || c == '-'
	}
	if ok && !keywordsEval[s] {
		return s
	}
	return QuoteString(s)
}

// keywordsEval are the names Nix 2.8 quotes although they look like
// identifiers: only "if" (its isVarName knows no other keyword), so
// `{ then = 1; }` prints unquoted, as nix-instantiate prints it.
var keywordsEval = map[string]bool{"if": true}

func isIdentStart(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' }

// QuoteString renders a Nix string literal.
func QuoteString(s string) string { return syntax.Quote(s) }

// PrintSyntax renders a parsed expression (nix-instantiate --parse).
func PrintSyntax(n syntax.Node) string { return syntax.Print(n) }
