package syntax

import (
	"sort"
	"strconv"
	"strings"
)

// Print renders a syntax tree as Nix source, fully parenthesised like
// nix-instantiate --parse.
func Print(n Node) string {
	var b strings.Builder
	pr(&b, n)
	return b.String()
}

// Quote renders s as a Nix string literal, escaping what the lexer would
// read back differently (also used for printing values).
func Quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		case c == '$' && i+1 < len(s) && s[i+1] == '{':
			b.WriteString(`\$`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func prPath(b *strings.Builder, path []AttrName) {
	for i, a := range path {
		if i > 0 {
			b.WriteByte('.')
		}
		if a.Dyn != nil {
			b.WriteString("${")
			pr(b, a.Dyn)
			b.WriteString("}")
		} else {
			b.WriteString(a.Name)
		}
	}
}

func pr(b *strings.Builder, n Node) {
	switch n := n.(type) {
	case *Int:
		b.WriteString(strconv.FormatInt(n.V, 10))
	case *Float:
		b.WriteString(strconv.FormatFloat(n.V, 'g', -1, 64))
	case *Str:
		b.WriteString(Quote(n.V))
	case *Interp:
		if n.IsPath {
			for _, p := range n.Parts {
				switch p := p.(type) {
				case *Path:
					b.WriteString(p.V)
				case *Str:
					b.WriteString(p.V)
				case *Interp:
					b.WriteString("${")
					pr(b, p.Parts[0])
					b.WriteString("}")
				}
			}
			return
		}
		b.WriteByte('"')
		for _, p := range n.Parts {
			if s, ok := p.(*Str); ok {
				q := Quote(s.V)
				b.WriteString(q[1 : len(q)-1])
				continue
			}
			b.WriteString("${")
			pr(b, p)
			b.WriteString("}")
		}
		b.WriteByte('"')
	case *Path:
		b.WriteString(n.V)
	case *SPath:
		b.WriteString("<" + n.V + ">")
	case *Var:
		b.WriteString(n.Name)
	case *CurPos:
		b.WriteString("__curPos")
	case *Select:
		b.WriteByte('(')
		pr(b, n.E)
		b.WriteString(").")
		prPath(b, n.Path)
		if n.Or != nil {
			b.WriteString(" or ")
			pr(b, n.Or)
		}
	case *HasAttr:
		b.WriteByte('(')
		pr(b, n.E)
		b.WriteString(" ? ")
		prPath(b, n.Path)
		b.WriteByte(')')
	case *List:
		b.WriteString("[ ")
		for _, it := range n.Items {
			b.WriteByte('(')
			pr(b, it)
			b.WriteString(") ")
		}
		b.WriteString("]")
	case *Attrs:
		if n.Rec {
			b.WriteString("rec ")
		}
		b.WriteString("{ ")
		prBinds(b, n)
		b.WriteString("}")
	case *Let:
		b.WriteString("(let ")
		prBinds(b, n.Attrs)
		b.WriteString("in ")
		pr(b, n.Body)
		b.WriteString(")")
	case *With:
		b.WriteString("(with ")
		pr(b, n.Attrs)
		b.WriteString("; ")
		pr(b, n.Body)
		b.WriteString(")")
	case *Assert:
		b.WriteString("assert ")
		pr(b, n.Cond)
		b.WriteString("; ")
		pr(b, n.Body)
	case *If:
		b.WriteString("(if ")
		pr(b, n.Cond)
		b.WriteString(" then ")
		pr(b, n.Then)
		b.WriteString(" else ")
		pr(b, n.Else)
		b.WriteString(")")
	case *Lambda:
		b.WriteByte('(')
		if n.Formals != nil {
			b.WriteString("{ ")
			for i, f := range n.Formals.List {
				if i > 0 {
					b.WriteString(", ")
				}
				b.WriteString(f.Name)
				if f.Default != nil {
					b.WriteString(" ? ")
					pr(b, f.Default)
				}
			}
			if n.Formals.Ellipsis {
				if len(n.Formals.List) > 0 {
					b.WriteString(", ")
				}
				b.WriteString("...")
			}
			b.WriteString(" }")
			if n.Arg != "" {
				b.WriteString(" @ " + n.Arg)
			}
		} else {
			b.WriteString(n.Arg)
		}
		b.WriteString(": ")
		pr(b, n.Body)
		b.WriteByte(')')
	case *Call:
		b.WriteByte('(')
		pr(b, n.Fn)
		for _, a := range n.Args {
			b.WriteByte(' ')
			pr(b, a)
		}
		b.WriteByte(')')
	case *Unary:
		if n.Op == "-" {
			b.WriteString("(-")
		} else {
			b.WriteString("(!")
		}
		pr(b, n.E)
		b.WriteByte(')')
	case *Binary:
		b.WriteByte('(')
		pr(b, n.L)
		b.WriteString(" " + n.Op + " ")
		pr(b, n.R)
		b.WriteByte(')')
	}
}

func prBinds(b *strings.Builder, a *Attrs) {
	defs := append([]*AttrDef(nil), a.Attrs...)
	sort.SliceStable(defs, func(i, j int) bool { return defs[i].Name < defs[j].Name })
	for _, d := range defs {
		switch {
		case d.Inherited:
			b.WriteString("inherit " + d.Name + "; ")
		case d.InheritFrom != nil:
			b.WriteString("inherit (")
			pr(b, d.InheritFrom)
			b.WriteString(") " + d.Name + "; ")
		default:
			b.WriteString(d.Name + " = ")
			pr(b, d.E)
			b.WriteString("; ")
		}
	}
	for _, d := range a.Dynamic {
		b.WriteString("${")
		pr(b, d.Name)
		b.WriteString("} = ")
		pr(b, d.E)
		b.WriteString("; ")
	}
}
