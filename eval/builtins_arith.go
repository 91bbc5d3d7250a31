package eval

import "math"

// registerArithmetic adds arithmetic, bitwise operations and comparison.
func registerArithmetic(reg registerFunc) {
	reg("add", 2, func(ev *Evaluator, a []Value) Value { return ev.addNum(a[0], a[1]) })
	reg("sub", 2, func(ev *Evaluator, a []Value) Value { return ev.arith('-', a[0], a[1], ev.curPos) })
	reg("mul", 2, func(ev *Evaluator, a []Value) Value { return ev.arith('*', a[0], a[1], ev.curPos) })
	reg("div", 2, func(ev *Evaluator, a []Value) Value { return ev.arith('/', a[0], a[1], ev.curPos) })
	reg("lessThan", 2, func(ev *Evaluator, a []Value) Value { return Bool(ev.lessThan(a[0], a[1], ev.curPos)) })
	reg("bitAnd", 2, func(ev *Evaluator, a []Value) Value { return ev.boxInt(Int(ev.intArg(a[0]) & ev.intArg(a[1]))) })
	reg("bitOr", 2, func(ev *Evaluator, a []Value) Value { return ev.boxInt(Int(ev.intArg(a[0]) | ev.intArg(a[1]))) })
	reg("bitXor", 2, func(ev *Evaluator, a []Value) Value { return ev.boxInt(Int(ev.intArg(a[0]) ^ ev.intArg(a[1]))) })
	reg("floor", 1, func(ev *Evaluator, a []Value) Value {
		f, isInt := ev.floatArg(a[0])
		if isInt {
			return Int(int64(f))
		}
		return Int(int64(math.Floor(f)))
	})
	reg("ceil", 1, func(ev *Evaluator, a []Value) Value {
		f, isInt := ev.floatArg(a[0])
		if isInt {
			return Int(int64(f))
		}
		return Int(int64(math.Ceil(f)))
	})
}
