package eval

import (
	"fmt"
	"os"
)

// registerControl adds the builtins that raise, catch and annotate errors,
// force evaluation or trace it.
func registerControl(reg registerFunc) {
	reg("abort", 1, func(ev *Evaluator, a []Value) Value {
		// (as C++ Nix: a path is copied to the store)
		s := ev.coerceToString(a[0], ev.curPos, false, true)
		// without a position, as C++ Nix 2.8 raises it (and throw's)
		panic(&Error{Kind: ErrAbort, Msg: fmt.Sprintf("evaluation aborted with the following error message: '%s'", s.S)})
	})
	reg("throw", 1, func(ev *Evaluator, a []Value) Value {
		// (as C++ Nix: a path is copied to the store)
		s := ev.coerceToString(a[0], ev.curPos, false, true)
		panic(&Error{Kind: ErrThrow, Msg: s.S})
	})
	reg("addErrorContext", 2, func(ev *Evaluator, a []Value) Value {
		m := ev.mark()
		defer func() {
			if r := recover(); r != nil {
				if e, ok := r.(*Error); ok {
					ev.addErrorContext(e, m, a[0])
				}
				panic(r)
			}
		}()
		return ev.Force(a[1])
	})
	reg("tryEval", 1, func(ev *Evaluator, a []Value) Value {
		v, ok := ev.tryEval(a[0])
		if !ok {
			return NewAttrs([]Attr{{key: keySuccess, Val: Bool(false)}, {key: keyValue, Val: Bool(false)}})
		}
		return NewAttrs([]Attr{{key: keySuccess, Val: Bool(true)}, {key: keyValue, Val: v}})
	})
	reg("seq", 2, func(ev *Evaluator, a []Value) Value { ev.Force(a[0]); return a[1] })
	reg("deepSeq", 2, func(ev *Evaluator, a []Value) Value { ev.ForceDeep(a[0]); return a[1] })
	reg("trace", 2, func(ev *Evaluator, a []Value) Value {
		v := ev.Force(a[0])
		var msg string
		if s, ok := v.(*String); ok {
			msg = s.S
		} else {
			msg = PrintLazy(ev, v)
		}
		if ev.opts.Trace != nil {
			ev.opts.Trace(msg)
		} else {
			fmt.Fprintf(os.Stderr, "trace: %s\n", msg)
		}
		return a[1]
	})
}

// tryEval forces v, catching throw and assert failures.
func (ev *Evaluator) tryEval(v Value) (res Value, ok bool) {
	m := ev.mark()
	defer func() {
		if r := recover(); r != nil {
			if e, isErr := r.(*Error); isErr && e.Catchable() {
				ev.unwindTo(m)
				res, ok = nil, false
				return
			}
			panic(r)
		}
	}()
	return ev.Force(v), true
}
