package eval

import (
	"math"

	"github.com/tvix-go/tvix/eval/syntax"
)

// add is a + b. As in C++ Nix, an error about an operand is reported at
// that operand (lpos, rpos: where each begins).
func (ev *Evaluator) add(a, b Value, lpos, rpos syntax.Pos) Value {
	a = ev.Force(a)
	switch x := a.(type) {
	case Int:
		switch y := ev.Force(b).(type) {
		case Int:
			return ev.boxInt(x + y)
		case Float:
			return Float(x) + y
		default:
			ev.throwAt(rpos, "cannot add %s to an integer", showType(y))
		}
	case Float:
		switch y := ev.Force(b).(type) {
		case Int:
			return x + Float(y)
		case Float:
			return x + y
		default:
			ev.throwAt(rpos, "cannot add %s to a float", showType(y))
		}
	case Path:
		s := ev.coerceToString(b, rpos, false, false)
		if len(s.Ctx()) > 0 {
			ev.throwAt(lpos, "a string that refers to a store path cannot be appended to a path")
		}
		return Path(canonPath(string(x) + s.S))
	case *String:
		s := ev.coerceToString(b, rpos, false, true)
		if s.S == "" && len(s.Ctx()) == 0 {
			return x
		}
		if x.S == "" && len(x.Ctx()) == 0 {
			// lib's addContextFrom ("substring 0 0 a + b") and
			// accumulators starting from "": the sum is s, no copy
			return s
		}
		return StrCtx(x.S+s.S, MergeContext(x.Ctx(), s.Ctx()))
	}
	s1 := ev.coerceToString(a, lpos, false, true)
	s2 := ev.coerceToString(b, rpos, false, true)
	return StrCtx(s1.S+s2.S, MergeContext(s1.Ctx(), s2.Ctx()))
}

func (ev *Evaluator) arith(op byte, a, b Value, pos syntax.Pos) Value {
	a, b = ev.Force(a), ev.Force(b)
	if x, ok := a.(Int); ok {
		if y, ok := b.(Int); ok {
			switch op {
			case '-':
				return ev.boxInt(x - y)
			case '*':
				return ev.boxInt(x * y)
			case '/':
				if y == 0 {
					ev.throwAt(pos, "division by zero")
				}
				if x == math.MinInt64 && y == -1 {
					ev.throwAt(pos, "integer overflow in dividing %d / %d", x, y)
				}
				return ev.boxInt(x / y)
			}
		}
	}
	var fx, fy float64
	switch x := a.(type) {
	case Int:
		fx = float64(x)
	case Float:
		fx = float64(x)
	default:
		ev.throwAt(pos, "value is %s while an integer was expected", showType(a))
	}
	switch y := b.(type) {
	case Int:
		fy = float64(y)
	case Float:
		fy = float64(y)
	default:
		ev.throwAt(pos, "value is %s while an integer was expected", showType(b))
	}
	switch op {
	case '-':
		return Float(fx - fy)
	case '*':
		return Float(fx * fy)
	}
	if fy == 0 {
		ev.throwAt(pos, "division by zero")
	}
	return Float(fx / fy)
}

func (ev *Evaluator) addNum(a, b Value) Value {
	a, b = ev.Force(a), ev.Force(b)
	switch a.(type) {
	case Int, Float:
	default:
		ev.Throwf("value is %s while an integer was expected", showType(a))
	}
	switch b.(type) {
	case Int, Float:
	default:
		ev.Throwf("value is %s while an integer was expected", showType(b))
	}
	return ev.add(a, b, ev.curPos, ev.curPos)
}
