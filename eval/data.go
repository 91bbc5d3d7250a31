package eval

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/tvix-go/tvix/eval/syntax"
)

func registerData(reg func(string, int, PrimOpFn)) {
	reg("toJSON", 1, func(ev *Evaluator, a []Value) Value {
		var b bytes.Buffer
		var ctx Context
		ev.toJSON(&b, a[0], &ctx)
		return StrCtx(b.String(), ctx)
	})
	reg("fromJSON", 1, func(ev *Evaluator, a []Value) Value {
		s := ev.str(a[0])
		d := json.NewDecoder(strings.NewReader(s))
		d.UseNumber()
		var x any
		if err := d.Decode(&x); err != nil {
			ev.Throwf("%s", err)
		}
		if d.More() {
			ev.Throwf("unexpected trailing data in JSON")
		}
		return ev.fromJSONValue(x)
	})
	reg("fromTOML", 1, func(ev *Evaluator, a []Value) Value {
		s := ev.str(a[0])
		var m map[string]any
		if _, err := toml.Decode(s, &m); err != nil {
			ev.Throwf("while parsing TOML: %s", err)
		}
		return ev.fromTOMLValue(m)
	})
	reg("toXML", 1, func(ev *Evaluator, a []Value) Value {
		var b bytes.Buffer
		var ctx Context
		b.WriteString("<?xml version='1.0' encoding='utf-8'?>\n<expr>\n")
		ev.toXML(&b, a[0], 1, &ctx, &xmlOpts{strict: true, drvsSeen: map[*Attrs]bool{}})
		b.WriteString("</expr>\n")
		return StrCtx(b.String(), ctx)
	})
}

func (ev *Evaluator) fromJSONValue(x any) Value {
	switch v := x.(type) {
	case nil:
		return Null{}
	case bool:
		return Bool(v)
	case json.Number:
		if i, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			return Int(i)
		}
		if !strings.ContainsAny(string(v), ".eE") {
			ev.Throwf("unsigned integer %s is too large for Nix", v)
		}
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil {
			ev.Throwf("bad number %s", v)
		}
		return Float(f)
	case string:
		return Str(v)
	case []any:
		out := make([]Value, len(v))
		for i, e := range v {
			out[i] = ev.fromJSONValue(e)
		}
		return &List{Items: out}
	case map[string]any:
		out := make([]Attr, 0, len(v))
		for k, e := range v {
			out = append(out, Attr{Name: k, Val: ev.fromJSONValue(e)})
		}
		return NewAttrs(out)
	}
	ev.Throwf("unsupported JSON value")
	return nil
}

func (ev *Evaluator) fromTOMLValue(x any) Value {
	switch v := x.(type) {
	case bool:
		return Bool(v)
	case int64:
		return Int(v)
	case float64:
		return Float(v)
	case string:
		return Str(v)
	case time.Time:
		ev.Throwf("while parsing TOML: Dates and times are not supported")
	case []any:
		out := make([]Value, len(v))
		for i, e := range v {
			out[i] = ev.fromTOMLValue(e)
		}
		return &List{Items: out}
	case []map[string]any:
		out := make([]Value, len(v))
		for i, e := range v {
			out[i] = ev.fromTOMLValue(e)
		}
		return &List{Items: out}
	case map[string]any:
		out := make([]Attr, 0, len(v))
		for k, e := range v {
			out = append(out, Attr{Name: k, Val: ev.fromTOMLValue(e)})
		}
		return NewAttrs(out)
	}
	ev.Throwf("while parsing TOML: unsupported value %T", x)
	return nil
}

func jsonString(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if c < 0x20 {
				fmt.Fprintf(b, `\u%04x`, c)
			} else {
				b.WriteByte(c)
			}
		}
	}
	b.WriteByte('"')
}

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
	s := strconv.FormatFloat(f, 'g', 6, 64)
	if i := strings.IndexByte(s, 'e'); i >= 0 {
		// C prints at least two exponent digits, as Go does.
		return s
	}
	return s
}

func (ev *Evaluator) toJSON(b *bytes.Buffer, v Value, ctx *Context) {
	ev.depth += dataDepthWeight
	if ev.depth > ev.maxDepth {
		ev.ThrowKind(ErrStackOverflow, "stack overflow")
	}
	defer func() { ev.depth -= dataDepthWeight }()
	v = ev.Force(v)
	switch x := v.(type) {
	case Null:
		b.WriteString("null")
	case Bool:
		if x {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case Int:
		b.WriteString(strconv.FormatInt(int64(x), 10))
	case Float:
		b.WriteString(formatFloat(float64(x)))
	case *String:
		*ctx = MergeContext(*ctx, x.Ctx())
		jsonString(b, x.S)
	case Path:
		sp := ev.copyPathToStore(string(x), ev.curPos)
		*ctx = MergeContext(*ctx, Context{sp})
		jsonString(b, sp)
	case *List:
		b.WriteByte('[')
		for i, it := range x.Items {
			if i > 0 {
				b.WriteByte(',')
			}
			ev.toJSON(b, it, ctx)
		}
		b.WriteByte(']')
	case *Attrs:
		if _, ok := x.Get("__toString"); ok {
			s := ev.coerceToString(x, ev.curPos, false, true)
			*ctx = MergeContext(*ctx, s.Ctx())
			jsonString(b, s.S)
			return
		}
		if o, ok := x.Get("outPath"); ok {
			ev.toJSON(b, o, ctx)
			return
		}
		b.WriteByte('{')
		for i, a := range x.All() {
			if i > 0 {
				b.WriteByte(',')
			}
			jsonString(b, a.Name)
			b.WriteByte(':')
			ev.toJSON(b, a.Val, ctx)
		}
		b.WriteByte('}')
	default:
		ev.Throwf("cannot convert %s to JSON", showType(v))
	}
}

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
	return fmt.Sprintf(" path=\"%s\"", xmlEscape(p.Src.Name))
}

func (ev *Evaluator) toXML(b *bytes.Buffer, v Value, depth int, ctx *Context, o *xmlOpts) {
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
		*ctx = MergeContext(*ctx, x.Ctx())
		elem("string", x.S)
	case Path:
		elem("path", string(x))
	case *List:
		b.WriteString(ind + "<list>\n")
		for _, it := range x.Items {
			ev.toXML(b, it, depth+1, ctx, o)
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
			extra := ""
			if lc.atSlot >= 0 {
				extra += fmt.Sprintf(" name=\"%s\"", xmlEscape(lc.argName()))
			}
			if lc.ellipsis {
				extra += " ellipsis=\"1\""
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

func (ev *Evaluator) xmlAttrs(b *bytes.Buffer, x *Attrs, depth int, ctx *Context, o *xmlOpts) {
	ind := strings.Repeat("  ", depth)
	for _, a := range x.All() {
		if o.location && a.Pos != nil {
			fmt.Fprintf(b, "%s<attr%s name=\"%s\"%s>\n", ind, xmlPos(a.Pos), xmlEscape(a.Name), xmlPath(a.Pos))
		} else {
			fmt.Fprintf(b, "%s<attr name=\"%s\">\n", ind, xmlEscape(a.Name))
		}
		ev.toXML(b, a.Val, depth+1, ctx, o)
		fmt.Fprintf(b, "%s</attr>\n", ind)
	}
}

// PrintValue renders a value as nix-instantiate --eval prints it. With
// strict unset, unevaluated thunks print as <CODE>.
func PrintValue(ev *Evaluator, v Value, strict bool) string {
	var b strings.Builder
	p := &printer{ev: ev, b: &b, strict: strict, seen: map[any]bool{}}
	p.print(v, nil)
	return b.String()
}

type printer struct {
	ev     *Evaluator
	b      *strings.Builder
	strict bool
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
			p.print(it, nil)
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
			p.b.WriteString(printAttrName(a.Name))
			p.b.WriteString(" = ")
			p.print(a.Val, nil)
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

var keywordsEval = map[string]bool{"if": true, "then": true, "else": true, "assert": true, "with": true,
	"let": true, "in": true, "rec": true, "inherit": true, "or": true}

func isIdentStart(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' }

// QuoteString renders a Nix string literal.
func QuoteString(s string) string { return syntax.Quote(s) }
