package eval

import (
	"bytes"
	"strconv"
	"unsafe"
)

// jsonText renders v as JSON, forcing it deeply and adding the contexts
// of its strings to ctx. It is measured first (which forces it and
// makes every conversion) and then written into one allocation of its
// size: a buffer growing by doubling allocated 2 to 4 times the text,
// and as much again at the peak of a large one.
func (ev *Evaluator) jsonText(v Value, ctx *ContextUnion) string {
	var conv []string
	n := ev.jsonSize(v, ctx, &conv)
	if n == 0 {
		return ""
	}
	b, _ := ev.appendJSON(make([]byte, 0, n), v, conv)
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// jsonStringSize is the length of s as a JSON string, quotes included.
func jsonStringSize(s string) int {
	n := len(s) + 2
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t':
			n++
		case c < 0x20:
			n += 5
		}
	}
	return n
}

func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		// the bytes that need no escape in one copy
		j := i
		for j < len(s) && s[j] >= 0x20 && s[j] != '"' && s[j] != '\\' {
			j++
		}
		b = append(b, s[i:j]...)
		if i = j; i == len(s) {
			break
		}
		switch c := s[i]; c {
		case '"':
			b = append(b, `\"`...)
		case '\\':
			b = append(b, `\\`...)
		case '\n':
			b = append(b, `\n`...)
		case '\r':
			b = append(b, `\r`...)
		case '\t':
			b = append(b, `\t`...)
		default:
			const hex = "0123456789abcdef"
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
		}
		i++
	}
	return append(b, '"')
}

// jsonSize is the length of v's JSON text. It does all that can fail or
// be seen (forcing, __toString, copying paths to the store) and keeps
// the strings of the conversions in conv, in order, for appendJSON.
func (ev *Evaluator) jsonSize(v Value, ctx *ContextUnion, conv *[]string) int {
	ev.depth += dataDepthWeight
	if ev.depth > ev.maxDepth {
		ev.ThrowKind(ErrStackOverflow, "stack overflow")
	}
	defer func() { ev.depth -= dataDepthWeight }()
	v = ev.Force(v)
	switch x := v.(type) {
	case Null:
		return len("null")
	case Bool:
		if x {
			return len("true")
		}
		return len("false")
	case Int:
		var buf [24]byte
		return len(strconv.AppendInt(buf[:0], int64(x), 10))
	case Float:
		return len(formatFloat(float64(x)))
	case *String:
		ctx.Add(x.Ctx())
		return jsonStringSize(x.S)
	case Path:
		sp := ev.copyPathToStore(string(x), ev.curPos)
		ctx.Add(Context{sp})
		*conv = append(*conv, sp)
		return jsonStringSize(sp)
	case *List:
		n := 2 + max(len(x.Items)-1, 0)
		for _, it := range x.Items {
			n += ev.jsonSize(it, ctx, conv)
		}
		return n
	case *Attrs:
		if _, ok := x.Get("__toString"); ok {
			s := ev.coerceToString(x, ev.curPos, false, true)
			ctx.Add(s.Ctx())
			*conv = append(*conv, s.S)
			return jsonStringSize(s.S)
		}
		if o, ok := x.Get("outPath"); ok {
			return ev.jsonSize(o, ctx, conv)
		}
		n := 2 + max(x.Len()-1, 0)
		for _, a := range x.All() {
			n += jsonStringSize(a.Name()) + 1 + ev.jsonSize(a.Val, ctx, conv)
		}
		return n
	default:
		ev.Throwf("cannot convert %s to JSON", showType(v))
	}
	return 0
}

// appendJSON writes the text jsonSize measured: v is forced, and the
// conversions are taken from conv.
func (ev *Evaluator) appendJSON(b []byte, v Value, conv []string) ([]byte, []string) {
	switch x := ev.Force(v).(type) {
	case Null:
		b = append(b, "null"...)
	case Bool:
		if x {
			b = append(b, "true"...)
		} else {
			b = append(b, "false"...)
		}
	case Int:
		b = strconv.AppendInt(b, int64(x), 10)
	case Float:
		b = append(b, formatFloat(float64(x))...)
	case *String:
		b = appendJSONString(b, x.S)
	case Path:
		b = appendJSONString(b, conv[0])
		conv = conv[1:]
	case *List:
		b = append(b, '[')
		for i, it := range x.Items {
			if i > 0 {
				b = append(b, ',')
			}
			b, conv = ev.appendJSON(b, it, conv)
		}
		b = append(b, ']')
	case *Attrs:
		if _, ok := x.Get("__toString"); ok {
			return appendJSONString(b, conv[0]), conv[1:]
		}
		if o, ok := x.Get("outPath"); ok {
			return ev.appendJSON(b, o, conv)
		}
		b = append(b, '{')
		for i, a := range x.All() {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, a.Name())
			b = append(b, ':')
			b, conv = ev.appendJSON(b, a.Val, conv)
		}
		b = append(b, '}')
	}
	return b, conv
}

// ToJSON renders v as JSON (forcing it deeply). Call inside Run.
func (ev *Evaluator) ToJSON(v Value) string {
	var ctx ContextUnion
	return ev.jsonText(v, &ctx)
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
