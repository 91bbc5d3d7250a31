package eval

import (
	"strings"

	"github.com/tvix-go/tvix/eval/syntax"
)

// Equal is Nix's ==.
func (ev *Evaluator) Equal(a, b Value, pos syntax.Pos) bool {
	a, b = ev.Force(a), ev.Force(b)
	switch x := a.(type) {
	case Int:
		switch y := b.(type) {
		case Int:
			return x == y
		case Float:
			return Float(x) == y
		}
		return false
	case Float:
		switch y := b.(type) {
		case Int:
			return x == Float(y)
		case Float:
			return x == y
		}
		return false
	case Bool:
		y, ok := b.(Bool)
		return ok && x == y
	case Null:
		_, ok := b.(Null)
		return ok
	case *String:
		y, ok := b.(*String)
		return ok && x.S == y.S
	case Path:
		y, ok := b.(Path)
		return ok && x == y
	case *List:
		y, ok := b.(*List)
		if !ok || len(x.Items) != len(y.Items) {
			return false
		}
		if x == y {
			return true
		}
		for i := range x.Items {
			if !ev.equalElem(x.Items[i], y.Items[i], pos) {
				return false
			}
		}
		return true
	case *Attrs:
		y, ok := b.(*Attrs)
		if !ok {
			return false
		}
		if x == y {
			return true
		}
		if ev.isDerivation(x) && ev.isDerivation(y) {
			o1, ok1 := x.Get("outPath")
			o2, ok2 := y.Get("outPath")
			if ok1 && ok2 {
				return ev.equalElem(o1, o2, pos)
			}
		}
		if x.Len() != y.Len() {
			return false
		}
		xa, ya := x.All(), y.All()
		for i := range xa {
			if !sameName(xa[i].key, ya[i].key) {
				return false
			}
		}
		for i := range xa {
			if !ev.equalElem(xa[i].Val, ya[i].Val, pos) {
				return false
			}
		}
		return true
	case *Lambda, *PrimOp, *PrimOpApp:
		return false
	}
	return false
}

// equalElem compares members of lists and sets (and elem's argument
// with the list's items), where C++ Nix compares value cells: one cell
// on both sides is equal to itself even when it holds a function, once
// it has been forced (a throwing member throws). A cell here is the
// thunk, or the value stored in its place. (Where a list or environment
// replaced a forced thunk by its value, the two no longer look like one
// cell: not worth a word per slot to remember.)
func (ev *Evaluator) equalElem(a, b Value, pos syntax.Pos) bool {
	switch x := a.(type) {
	case *Thunk:
		if y, ok := b.(*Thunk); ok && x == y {
			ev.Force(a)
			return true
		}
	case *Lambda:
		if y, ok := b.(*Lambda); ok && x == y {
			return true
		}
	case *PrimOp:
		if y, ok := b.(*PrimOp); ok && x == y {
			return true
		}
	case *PrimOpApp:
		if y, ok := b.(*PrimOpApp); ok && x == y {
			return true
		}
	}
	return ev.Equal(a, b, pos)
}

func (ev *Evaluator) isDerivation(a *Attrs) bool {
	t, ok := a.Get("type")
	if !ok {
		return false
	}
	s, ok := ev.Force(t).(*String)
	return ok && s.S == "derivation"
}

func (ev *Evaluator) lessThan(a, b Value, pos syntax.Pos) bool {
	return ev.compare(a, b, pos) < 0
}

// compare orders two values as builtins.lessThan and sort do.
func (ev *Evaluator) compare(a, b Value, pos syntax.Pos) int {
	a, b = ev.Force(a), ev.Force(b)
	switch x := a.(type) {
	case Int:
		switch y := b.(type) {
		case Int:
			return cmp3(x < y, x > y)
		case Float:
			return cmp3(Float(x) < y, Float(x) > y)
		}
	case Float:
		switch y := b.(type) {
		case Int:
			return cmp3(x < Float(y), x > Float(y))
		case Float:
			return cmp3(x < y, x > y)
		}
	case *String:
		if y, ok := b.(*String); ok {
			return strings.Compare(x.S, y.S)
		}
	case Path:
		if y, ok := b.(Path); ok {
			return strings.Compare(string(x), string(y))
		}
	case *List:
		if y, ok := b.(*List); ok {
			for i := 0; ; i++ {
				if i == len(y.Items) {
					if i == len(x.Items) {
						return 0
					}
					return 1
				}
				if i == len(x.Items) {
					return -1
				}
				if !ev.equalElem(x.Items[i], y.Items[i], pos) {
					return ev.compare(x.Items[i], y.Items[i], pos)
				}
			}
		}
	}
	// without a position, as C++ Nix's comparison raises it
	ev.throwNoPos("cannot compare %s with %s", showType(a), showType(b))
	return 0
}

func cmp3(lt, gt bool) int {
	switch {
	case lt:
		return -1
	case gt:
		return 1
	}
	return 0
}
