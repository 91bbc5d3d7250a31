package eval

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

func registerData(reg registerFunc) {
	reg("toJSON", 1, func(ev *Evaluator, a []Value) Value {
		var ctx ContextUnion
		s := ev.jsonText(a[0], &ctx)
		return StrCtx(s, ctx.Context())
	})
	reg("fromJSON", 1, func(ev *Evaluator, a []Value) Value {
		s := ev.str(a[0])
		if v, ok := decodeJSON(s, ev.step); ok {
			return v
		}
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
		var ctx ContextUnion
		b.WriteString("<?xml version='1.0' encoding='utf-8'?>\n<expr>\n")
		ev.toXML(&b, a[0], 1, &ctx, &xmlOpts{strict: true, drvsSeen: map[*Attrs]bool{}})
		b.WriteString("</expr>\n")
		return StrCtx(b.String(), ctx.Context())
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
		if i := strings.IndexByte(v, 0); i >= 0 {
			v = v[:i] // as decodeJSON: a value ends at its first \u0000
		}
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
			out = append(out, MkAttr(k, ev.fromJSONValue(e)))
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
			out = append(out, MkAttr(k, ev.fromTOMLValue(e)))
		}
		return NewAttrs(out)
	}
	ev.Throwf("while parsing TOML: unsupported value %T", x)
	return nil
}
