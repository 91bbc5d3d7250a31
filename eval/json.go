package eval

import (
	"bytes"
	"fmt"
	"strconv"
	"unsafe"
)

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

func (ev *Evaluator) toJSON(b *bytes.Buffer, v Value, ctx *ContextUnion) {
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
		b.Write(strconv.AppendInt(b.AvailableBuffer(), int64(x), 10)) // no string per number
	case Float:
		b.WriteString(formatFloat(float64(x)))
	case *String:
		ctx.Add(x.Ctx())
		jsonString(b, x.S)
	case Path:
		sp := ev.copyPathToStore(string(x), ev.curPos)
		ctx.Add(Context{sp})
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
			ctx.Add(s.Ctx())
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
			jsonString(b, a.Name())
			b.WriteByte(':')
			ev.toJSON(b, a.Val, ctx)
		}
		b.WriteByte('}')
	default:
		ev.Throwf("cannot convert %s to JSON", showType(v))
	}
}

// ToJSON renders v as JSON (forcing it deeply). Call inside Run.
func (ev *Evaluator) ToJSON(v Value) string {
	var b bytes.Buffer
	var ctx ContextUnion
	ev.toJSON(&b, v, &ctx)
	return bufString(&b)
}

// bufString is the contents of b, which is not used again, as a string
// without copying them: a copy of a large JSON or XML text would briefly
// double it at the peak.
func bufString(b *bytes.Buffer) string {
	if b.Len() == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b.Bytes()), b.Len())
}
