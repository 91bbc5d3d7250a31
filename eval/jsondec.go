package eval

import (
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// decodeJSON builds the value of a JSON text directly, without the
// generic tree (maps, []any, json.Number) encoding/json makes first: that
// took twice Nix's time and half again its memory on large documents.
// ok is false on anything it does not take as it stands (malformed
// input, lone surrogates): the caller then asks encoding/json, for its
// error message. Strings keep their bytes as Nix's do, invalid UTF-8
// included. step, when not nil, is called after each object and array.
func decodeJSON(s string, step func()) (v Value, ok bool) {
	d := jsonDec{s: s, step: step}
	d.ws()
	v, ok = d.value(0)
	if !ok {
		return nil, false
	}
	d.ws()
	return v, d.i == len(d.s)
}

type jsonDec struct {
	s string
	i int
	// the members of the objects and arrays being read, innermost last:
	// each is copied into a value of exactly its size when it ends,
	// instead of growing a slice of its own by doubling (which left an
	// object of 5 attributes 600 bytes of garbage and 8 slots)
	attrs []Attr
	items []Value
	// the string values are made in slabs of growing size (at most
	// 64): a document is mostly kept, or dropped, whole
	strs    []String
	strSlab int
	// one key per distinct member name: arrays of objects repeat them
	keys map[string]*attrKey
	// the evaluator's step: a large document is one builtin call, and
	// without it the collector's poll (Options.Periodic) did not run
	// while the heap grew by all of it (json of 80,000: 69.5 MB paced,
	// 91 MB reached)
	step func()
}

func (d *jsonDec) newStr(s string) *String {
	if len(d.strs) == 0 {
		d.strSlab = min(max(2*d.strSlab, 4), 64)
		d.strs = make([]String, d.strSlab)
	}
	x := &d.strs[0]
	d.strs = d.strs[1:]
	x.S = s
	return x
}

func (d *jsonDec) key(name string) *attrKey {
	if k, ok := d.keys[name]; ok {
		return k
	}
	if d.keys == nil {
		d.keys = map[string]*attrKey{}
	}
	k := newKey(name, nil)
	d.keys[name] = k
	return k
}

// maxJSONDepth bounds the recursion; deeper documents go to encoding/json.
const maxJSONDepth = 10000

func (d *jsonDec) ws() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *jsonDec) lit(word string, v Value) (Value, bool) {
	if strings.HasPrefix(d.s[d.i:], word) {
		d.i += len(word)
		return v, true
	}
	return nil, false
}

func (d *jsonDec) value(depth int) (Value, bool) {
	if d.i >= len(d.s) || depth > maxJSONDepth {
		return nil, false
	}
	switch c := d.s[d.i]; {
	case c == '{':
		return d.object(depth)
	case c == '[':
		return d.array(depth)
	case c == '"':
		s, ok := d.str(true)
		if !ok {
			return nil, false
		}
		return d.newStr(s), true
	case c == 't':
		return d.lit("true", Bool(true))
	case c == 'f':
		return d.lit("false", Bool(false))
	case c == 'n':
		return d.lit("null", Null{})
	case c == '-' || c >= '0' && c <= '9':
		return d.number()
	}
	return nil, false
}

func (d *jsonDec) object(depth int) (Value, bool) {
	d.i++ // {
	start := len(d.attrs)
	d.ws()
	if d.i < len(d.s) && d.s[d.i] == '}' {
		d.i++
		return NewAttrs(nil), true
	}
	for {
		d.ws()
		if d.i >= len(d.s) || d.s[d.i] != '"' {
			return nil, false
		}
		k, ok := d.str(false)
		if !ok {
			return nil, false
		}
		d.ws()
		if d.i >= len(d.s) || d.s[d.i] != ':' {
			return nil, false
		}
		d.i++
		d.ws()
		v, ok := d.value(depth + 1)
		if !ok {
			return nil, false
		}
		d.attrs = append(d.attrs, Attr{key: d.key(k), Val: v})
		d.ws()
		if d.i >= len(d.s) {
			return nil, false
		}
		switch d.s[d.i] {
		case ',':
			d.i++
		case '}':
			d.i++
			return d.endObject(start), true
		default:
			return nil, false
		}
	}
}

// endObject makes the set of the members read since start; later
// duplicates win, as with encoding/json.
func (d *jsonDec) endObject(start int) *Attrs {
	as := d.attrs[start:]
	sortAttrs(as)
	n := 0
	for i := range as {
		if n > 0 && sameName(as[n-1].key, as[i].key) {
			as[n-1] = as[i]
			continue
		}
		as[n] = as[i]
		n++
	}
	a := allocAttrs(n)
	copy(a.own(), as[:n])
	clear(as)
	d.attrs = d.attrs[:start]
	if d.step != nil {
		d.step()
	}
	return a
}

func (d *jsonDec) array(depth int) (Value, bool) {
	d.i++ // [
	start := len(d.items)
	d.ws()
	if d.i < len(d.s) && d.s[d.i] == ']' {
		d.i++
		return &List{}, true
	}
	for {
		d.ws()
		v, ok := d.value(depth + 1)
		if !ok {
			return nil, false
		}
		d.items = append(d.items, v)
		d.ws()
		if d.i >= len(d.s) {
			return nil, false
		}
		switch d.s[d.i] {
		case ',':
			d.i++
		case ']':
			d.i++
			l := allocList(len(d.items) - start)
			copy(l.Items, d.items[start:])
			clear(d.items[start:])
			d.items = d.items[:start]
			if d.step != nil {
				d.step()
			}
			return l, true
		default:
			return nil, false
		}
	}
}

// number reads JSON's number grammar: an integer that fits is an Int,
// anything with a fraction or exponent a Float; integers too large for
// 64 bits go to encoding/json (for Nix's error).
func (d *jsonDec) number() (Value, bool) {
	start := d.i
	if d.s[d.i] == '-' {
		d.i++
	}
	digits := func() int {
		n := 0
		for d.i < len(d.s) && d.s[d.i] >= '0' && d.s[d.i] <= '9' {
			d.i++
			n++
		}
		return n
	}
	if d.i < len(d.s) && d.s[d.i] == '0' {
		d.i++
	} else if digits() == 0 {
		return nil, false
	}
	isFloat := false
	if d.i < len(d.s) && d.s[d.i] == '.' {
		d.i++
		if digits() == 0 {
			return nil, false
		}
		isFloat = true
	}
	if d.i < len(d.s) && (d.s[d.i] == 'e' || d.s[d.i] == 'E') {
		d.i++
		if d.i < len(d.s) && (d.s[d.i] == '+' || d.s[d.i] == '-') {
			d.i++
		}
		if digits() == 0 {
			return nil, false
		}
		isFloat = true
	}
	text := d.s[start:d.i]
	if !isFloat {
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return nil, false
		}
		return Int(n), true
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil {
		return nil, false
	}
	return Float(f), true
}

// str reads a string at d.i (the opening quote). A value (cutNul) ends at
// its first \u0000, as C++ Nix's strings do; a name keeps it, as Nix's
// symbols do ({ "k\u0000x" = 1; }, whose attrNames then give "k").
func (d *jsonDec) str(cutNul bool) (string, bool) {
	d.i++
	start := d.i
	// fast path: no escapes
	for d.i < len(d.s) {
		c := d.s[d.i]
		if c == '"' {
			s := d.s[start:d.i]
			d.i++
			return s, true
		}
		if c == '\\' || c < 0x20 {
			break
		}
		d.i++
	}
	b := []byte(d.s[start:d.i])
	nul := -1 // where the first \u0000 went
	for d.i < len(d.s) {
		c := d.s[d.i]
		switch {
		case c == '"':
			d.i++
			if nul >= 0 {
				b = b[:nul]
			}
			return string(b), true
		case c < 0x20:
			return "", false
		case c != '\\':
			b = append(b, c)
			d.i++
			continue
		}
		if d.i+1 >= len(d.s) {
			return "", false
		}
		e := d.s[d.i+1]
		d.i += 2
		switch e {
		case '"', '\\', '/':
			b = append(b, e)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, ok := d.hex4()
			if !ok {
				return "", false
			}
			if utf16.IsSurrogate(r) {
				if !strings.HasPrefix(d.s[d.i:], `\u`) {
					return "", false
				}
				d.i += 2
				r2, ok := d.hex4()
				if !ok {
					return "", false
				}
				if r = utf16.DecodeRune(r, r2); r == utf8.RuneError {
					return "", false
				}
			}
			if r == 0 && nul < 0 && cutNul {
				nul = len(b)
			}
			b = utf8.AppendRune(b, r)
		default:
			return "", false
		}
	}
	return "", false
}

func (d *jsonDec) hex4() (rune, bool) {
	if d.i+4 > len(d.s) {
		return 0, false
	}
	n, err := strconv.ParseUint(d.s[d.i:d.i+4], 16, 32)
	if err != nil {
		return 0, false
	}
	d.i += 4
	return rune(n), true
}
