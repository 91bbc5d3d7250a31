package eval

import (
	"strconv"
	"unsafe"

	"github.com/tvix-go/tvix/eval/syntax"
)

// CoerceToString converts a value as string interpolation does
// ("${x}"): strings, paths (copied to the store), and attrsets with
// __toString or outPath.
func (ev *Evaluator) CoerceToString(v Value) *String {
	return ev.coerceToString(v, ev.curPos, false, true)
}

// CoerceToStringMore converts as builtins.toString does (also ints,
// floats, bools, null, lists), without copying paths.
func (ev *Evaluator) CoerceToStringMore(v Value, copyToStore bool) *String {
	return ev.coerceToString(v, ev.curPos, true, copyToStore)
}

func (ev *Evaluator) coerceToString(v Value, pos syntax.Pos, more, copyToStore bool) *String {
	// Strings and the outPath of derivations are handled here, in a small
	// frame and without recursion: a derivation depending on another is
	// forced from inside this call, so chains of them nest it deeply.
	for {
		if t, ok := v.(*Thunk); ok {
			v = ev.forceThunk(t) // not Force: one frame less on the recursion path
		}
		switch x := v.(type) {
		case *String:
			return x
		case *Attrs:
			if x.Lookup("__toString") == nil {
				if o := x.Lookup("outPath"); o != nil {
					v = o.Val
					continue
				}
			}
		}
		return ev.coerceToStringSlow(v, pos, more, copyToStore)
	}
}

// coerceToStringSlow is coerceToString for the other cases.
//
//go:noinline
func (ev *Evaluator) coerceToStringSlow(v Value, pos syntax.Pos, more, copyToStore bool) *String {
	v = ev.Force(v)
	switch x := v.(type) {
	case *String:
		return x
	case Path:
		if copyToStore {
			sp := ev.copyPathToStore(string(x), pos)
			return StrCtx(sp, Context{sp})
		}
		return Str(string(x))
	case *Attrs:
		if f, ok := x.Get("__toString"); ok {
			r := ev.Force(ev.call(ev.Force(f), x, pos))
			return ev.coerceToString(r, pos, more, copyToStore)
		}
		if o, ok := x.Get("outPath"); ok {
			return ev.coerceToString(o, pos, more, copyToStore)
		}
	case Int:
		if more {
			return Str(strconv.FormatInt(int64(x), 10))
		}
	case Float:
		if more {
			return Str(strconv.FormatFloat(float64(x), 'f', 6, 64))
		}
	case Bool:
		if more {
			if x {
				return Str("1")
			}
			return Str("")
		}
	case Null:
		if more {
			return Str("")
		}
	case *List:
		if more {
			// the parts first, then the result in one allocation of its
			// size (appending copied it over and over, then once more)
			var small [16]*String
			parts := small[:0]
			if len(x.Items) > len(small) {
				parts = make([]*String, 0, len(x.Items))
			}
			var ctx ContextUnion
			n := 0
			for i, it := range x.Items {
				s := ev.coerceToString(it, pos, more, copyToStore)
				if i > 0 && !isEmptyList(ev.Force(x.Items[i-1])) {
					n++
				}
				parts = append(parts, s)
				n += len(s.S)
				ctx.Add(s.Ctx())
			}
			b := make([]byte, 0, n)
			for i, s := range parts {
				if i > 0 && !isEmptyList(ev.Force(x.Items[i-1])) {
					b = append(b, ' ')
				}
				b = append(b, s.S...)
			}
			return StrCtx(unsafe.String(unsafe.SliceData(b), len(b)), ctx.Context())
		}
	}
	ev.throwAt(pos, "cannot coerce %s to a string", showType(v))
	return nil
}

// coerceToPath forces an absolute path from a path or string.
func (ev *Evaluator) coerceToPath(v Value) string {
	s := ev.coerceToString(v, ev.curPos, false, false)
	if s.S == "" || s.S[0] != '/' {
		ev.Throwf("string '%s' doesn't represent an absolute path", s.S)
	}
	return canonPath(s.S)
}

func isEmptyList(v Value) bool {
	l, ok := v.(*List)
	return ok && len(l.Items) == 0
}
