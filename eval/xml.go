package eval

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/tvix-go/tvix/eval/syntax"
)

func xmlEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			b.WriteString("&quot;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		case '\n':
			b.WriteString("&#xA;")
		case '\r':
			b.WriteString("&#xD;")
		case '\t':
			b.WriteString("&#x9;")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

type xmlOpts struct {
	strict, location bool
	drvsSeen         map[*Attrs]bool
}

// xmlPos renders position attributes (sorted, as Nix's XML writer does).
func xmlPos(p *syntax.Pos) string {
	if p == nil || !p.IsValid() {
		return ""
	}
	l, c := p.LineCol()
	return fmt.Sprintf(" column=\"%d\" line=\"%d\"", c, l)
}

func xmlPath(p *syntax.Pos) string {
	if p == nil || !p.IsValid() {
		return ""
	}
	return fmt.Sprintf(" path=\"%s\"", xmlEscape(posFile(p.Src)))
}

func (ev *Evaluator) toXML(b *bytes.Buffer, v Value, depth int, ctx *ContextUnion, o *xmlOpts) {
	ind := strings.Repeat("  ", depth)
	if t, ok := v.(*Thunk); ok && !o.strict && !t.done() {
		b.WriteString(ind + "<unevaluated />\n")
		return
	}
	v = ev.Force(v)
	elem := func(name, val string) { fmt.Fprintf(b, "%s<%s value=\"%s\" />\n", ind, name, xmlEscape(val)) }
	switch x := v.(type) {
	case Null:
		b.WriteString(ind + "<null />\n")
	case Bool:
		elem("bool", map[bool]string{true: "true", false: "false"}[bool(x)])
	case Int:
		elem("int", strconv.FormatInt(int64(x), 10))
	case Float:
		elem("float", formatFloat(float64(x)))
	case *String:
		ctx.Add(x.Ctx())
		elem("string", x.S)
	case Path:
		elem("path", string(x))
	case *List:
		b.WriteString(ind + "<list>\n")
		for _, it := range x.Items {
			ev.xmlMember(b, it, depth+1, ctx, o)
		}
		b.WriteString(ind + "</list>\n")
	case *Attrs:
		if ev.isDerivation(x) {
			attrs := ""
			if dp, ok := x.Get("drvPath"); ok {
				if s, ok := ev.Force(dp).(*String); ok {
					attrs += fmt.Sprintf(" drvPath=\"%s\"", xmlEscape(s.S))
				}
			}
			if op, ok := x.Get("outPath"); ok {
				if s, ok := ev.Force(op).(*String); ok {
					attrs += fmt.Sprintf(" outPath=\"%s\"", xmlEscape(s.S))
				}
			}
			b.WriteString(ind + "<derivation" + attrs + ">\n")
			if o.drvsSeen[x] {
				b.WriteString(ind + "  <repeated />\n")
			} else {
				o.drvsSeen[x] = true
				ev.xmlAttrs(b, x, depth+1, ctx, o)
			}
			b.WriteString(ind + "</derivation>\n")
			return
		}
		b.WriteString(ind + "<attrs>\n")
		ev.xmlAttrs(b, x, depth+1, ctx, o)
		b.WriteString(ind + "</attrs>\n")
	case *Lambda:
		lc := x.fn
		if o.location {
			b.WriteString(ind + "<function" + xmlPos(&lc.pos) + xmlPath(&lc.pos) + ">\n")
		} else {
			b.WriteString(ind + "<function>\n")
		}
		if lc.simple {
			fmt.Fprintf(b, "%s  <varpat name=\"%s\" />\n", ind, xmlEscape(lc.argName()))
		} else {
			// Nix keeps XML attributes in a std::map: sorted by name
			extra := ""
			if lc.ellipsis {
				extra += " ellipsis=\"1\""
			}
			if lc.atSlot >= 0 {
				extra += fmt.Sprintf(" name=\"%s\"", xmlEscape(lc.argName()))
			}
			fmt.Fprintf(b, "%s  <attrspat%s>\n", ind, extra)
			for _, f := range lc.formals {
				fmt.Fprintf(b, "%s    <attr name=\"%s\" />\n", ind, xmlEscape(f.name))
			}
			fmt.Fprintf(b, "%s  </attrspat>\n", ind)
		}
		b.WriteString(ind + "</function>\n")
	case *PrimOp, *PrimOpApp:
		b.WriteString(ind + "<unevaluated />\n")
	default:
		b.WriteString(ind + "<unevaluated />\n")
	}
}

// xmlMember writes a member of a list or set: not strict, the values
// C++ Nix would still hold as thunks are <unevaluated /> (see
// printer.member).
func (ev *Evaluator) xmlMember(b *bytes.Buffer, v Value, depth int, ctx *ContextUnion, o *xmlOpts) {
	if !o.strict && lazyMember(v) {
		b.WriteString(strings.Repeat("  ", depth) + "<unevaluated />\n")
		return
	}
	ev.toXML(b, v, depth, ctx, o)
}

func (ev *Evaluator) xmlAttrs(b *bytes.Buffer, x *Attrs, depth int, ctx *ContextUnion, o *xmlOpts) {
	ind := strings.Repeat("  ", depth)
	for _, a := range x.All() {
		if o.location && a.Pos() != nil {
			fmt.Fprintf(b, "%s<attr%s name=\"%s\"%s>\n", ind, xmlPos(a.Pos()), xmlEscape(a.Name()), xmlPath(a.Pos()))
		} else {
			fmt.Fprintf(b, "%s<attr name=\"%s\">\n", ind, xmlEscape(a.Name()))
		}
		ev.xmlMember(b, a.Val, depth+1, ctx, o)
		fmt.Fprintf(b, "%s</attr>\n", ind)
	}
}

// ToXML renders v as nix-instantiate --xml does: with strict, values are
// forced deeply; with location, attributes and functions carry their
// source positions.
func (ev *Evaluator) ToXML(v Value, strict, location bool) string {
	var b bytes.Buffer
	var ctx ContextUnion
	b.WriteString("<?xml version='1.0' encoding='utf-8'?>\n<expr>\n")
	ev.toXML(&b, v, 1, &ctx, &xmlOpts{strict: strict, location: location, drvsSeen: map[*Attrs]bool{}})
	b.WriteString("</expr>\n")
	return bufString(&b)
}
