package eval

import (
	"fmt"

	"github.com/tvix-go/tvix/eval/syntax"
)

// pairEnv holds the two environments of a curried two-argument call.
type pairEnv struct {
	e1 Env
	e2 Env
}

// CallN applies f to arguments and returns the result forced.
func (ev *Evaluator) CallN(f Value, args []Value) Value {
	r := ev.Force(f)
	for _, a := range args {
		r = ev.Force(ev.call(r, a, ev.curPos))
	}
	return r
}

// Call1 applies f to one argument, forcing the result.
func (ev *Evaluator) Call1(f, a Value) Value { return ev.Force(ev.call(ev.Force(f), a, ev.curPos)) }

// The functions through which evaluation recurses (call, call2,
// callPrimOpStack, forceThunk, Force) keep their common case in a small
// frame, the rest in functions of their own: a chain of 10,000
// derivations nests them 10,000 deep (~20 frames per link), so the Go
// stack grows by every byte of these frames at each level.

// call applies a forced function value to one argument; the result may
// be a thunk.
func (ev *Evaluator) call(f Value, arg Value, pos syntax.Pos) Value {
	switch fn := f.(type) {
	case *Lambda:
		return ev.callCode(fn.fn, fn.env, arg, pos)
	case *PrimOp:
		if fn.Arity == 1 {
			n := len(ev.args)
			ev.args = append(ev.args, arg)
			return ev.callPrimOpStack(fn, n)
		}
	}
	return ev.callOther(f, arg, pos)
}

// callOther is call for partial applications of builtins, functors and
// what is not a function.
//
//go:noinline
func (ev *Evaluator) callOther(f Value, arg Value, pos syntax.Pos) Value {
	switch fn := f.(type) {
	case *PrimOp:
		x := &struct {
			PrimOpApp
			a [1]Value
		}{}
		x.Op, x.a[0] = fn, arg
		x.Args = x.a[:]
		return &x.PrimOpApp
	case *PrimOpApp:
		if len(fn.Args)+1 == fn.Op.Arity {
			n := len(ev.args)
			ev.args = append(ev.args, fn.Args...)
			ev.args = append(ev.args, arg)
			return ev.callPrimOpStack(fn.Op, n)
		}
		args := make([]Value, len(fn.Args)+1)
		copy(args, fn.Args)
		args[len(fn.Args)] = arg
		return &PrimOpApp{Op: fn.Op, Args: args}
	case *Attrs:
		if functor, ok := fn.Get("__functor"); ok {
			g := ev.Force(ev.call(ev.Force(functor), fn, pos))
			return ev.call(g, arg, pos)
		}
	}
	ev.throwAt(pos, "attempt to call something which is not a function but %s", showType(f))
	return nil
}

// call2 applies f to two arguments; for a curried lambda (a: b: ...)
// it skips building the intermediate closure.
func (ev *Evaluator) call2(f Value, a, b Value, pos syntax.Pos) Value {
	switch fn := f.(type) {
	case *Lambda:
		if fn.fn.simple && fn.fn.inner != nil {
			// (two functions, called directly: the frame of each only
			// has room for what it calls itself)
			if fn.fn.inner.simple {
				return ev.call2Simple(fn, a, b, pos)
			}
			return ev.call2Formals(fn, a, b, pos)
		}
	case *PrimOp:
		if fn.Arity == 2 {
			n := len(ev.args)
			ev.args = append(ev.args, a, b)
			return ev.callPrimOpStack(fn, n)
		}
	}
	return ev.call(ev.Force(ev.call(f, a, pos)), b, pos)
}

// call2Simple is call2 of a curried lambda a: b: ....
//
//go:noinline
func (ev *Evaluator) call2Simple(l *Lambda, a, b Value, pos syntax.Pos) Value {
	inner := l.fn.inner
	// as in callCode: the frame first, so that pos is dead before the
	// first call (written out: a pushFrame method is past the inliner's
	// budget, and a call per Nix call costs more than the six lines)
	if fs, n := ev.frames, len(ev.frames); n < cap(fs) {
		fs = fs[:n+1]
		fs[n] = callFrame{inner, pos}
		ev.frames = fs
	} else {
		ev.pushFrameGrow(inner, pos)
	}
	ev.depth++
	if ev.depth > ev.maxDepth {
		ev.throwStackOverflowInCall()
	}
	// both environments in one allocation, reused when the body
	// cannot keep a reference to them
	// (a fresh one is written where it is made: a store after the
	// branches came behind a nil check, whose load on a fresh page maps
	// the zero page, so that the store faults a second time; see newEnv)
	e := ev.pairPool
	if e != nil && inner.noCapture {
		next, _ := e.e2.v0.(*pairEnv)
		ev.pairPool, ev.pairPooled = next, ev.pairPooled-1
		e.e1.up, e.e1.v0 = l.env, a
	} else {
		e = &pairEnv{e1: Env{up: l.env, v0: a}}
	}
	e.e2.up, e.e2.v0 = &e.e1, b
	v := inner.body(ev, &e.e2)
	ev.frames = ev.frames[:len(ev.frames)-1]
	if inner.noCapture && ev.pairPooled < envPoolMax {
		// a stack as callCode's, linked through e2.v0
		e.e1.up, e.e1.v0, e.e2.v0 = nil, nil, ev.pairPool
		ev.pairPool, ev.pairPooled = e, ev.pairPooled+1
	}
	ev.depth--
	return v
}

// call2Formals is call2 of a curried lambda a: { ... }: ....
//
//go:noinline
func (ev *Evaluator) call2Formals(l *Lambda, a, b Value, pos syntax.Pos) Value {
	ev.depth++
	if ev.depth > ev.maxDepth {
		ev.throwStackOverflow()
	}
	env := newEnv(l.env, 1)
	env.v0 = a
	v := ev.callCode(l.fn.inner, env, b, pos)
	ev.depth--
	return v
}

// callPrimOpStack calls p with the arguments pushed on ev.args from n on
// (no allocation per call), and pops them. Builtins do not keep their
// argument slice (the capacity is capped so that appending to it cannot
// reach the stack).
func (ev *Evaluator) callPrimOpStack(p *PrimOp, n int) Value {
	end := len(ev.args)
	ev.depth++
	if ev.depth > ev.maxDepth {
		ev.throwStackOverflow()
	}
	v := p.Fn(ev, ev.args[n:end:end])
	ev.depth--
	clear(ev.args[n:])
	ev.args = ev.args[:n]
	return v
}

// throwStackOverflow is kept out of line: the frames of its callers
// (the recursion path) would hold its arguments.
//
//go:noinline
func (ev *Evaluator) throwStackOverflow() {
	ev.ThrowKind(ErrStackOverflow, "stack overflow (possible infinite recursion)")
}

func (ev *Evaluator) callLambda(fn *Lambda, arg Value, pos syntax.Pos) Value {
	return ev.callCode(fn.fn, fn.env, arg, pos)
}

func (ev *Evaluator) callCode(lc *lambdaCode, cenv *Env, arg Value, pos syntax.Pos) Value {
	// The frame first: pos is then dead before the first call, and no
	// slot of this frame (on the stack once per nested call) holds it.
	if fs, n := ev.frames, len(ev.frames); n < cap(fs) {
		fs = fs[:n+1]
		fs[n] = callFrame{lc, pos}
		ev.frames = fs
	} else {
		ev.pushFrameGrow(lc, pos)
	}
	ev.depth++
	if ev.depth > ev.maxDepth {
		ev.throwStackOverflowInCall()
	}
	if ev.ticks--; ev.ticks == 0 {
		ev.periodic()
	}
	var env *Env
	if !lc.simple {
		env = ev.formalsEnv(lc, cenv, arg)
	} else if lc.noCapture && ev.envPool != nil {
		env, ev.envPool = ev.envPool, ev.envPool.up
		ev.envPooled--
		env.up, env.v0 = cenv, arg
	} else {
		env = &Env{up: cenv, v0: arg}
	}
	v := lc.body(ev, env)
	ev.frames = ev.frames[:len(ev.frames)-1]
	if lc.simple && lc.noCapture && ev.envPooled < envPoolMax {
		// the body kept no reference to env: a later such call reuses it.
		// The pool is a stack, linked through up: such calls nest (a
		// predicate forcing genList's item calls the generator), and a
		// pool of one lost the inner call's env to the outer's each time.
		env.up, env.v0 = ev.envPool, nil
		ev.envPool = env
		ev.envPooled++
	}
	ev.depth--
	return v
}

// envPoolMax is how many environments callCode keeps for reuse: enough
// for the nesting of such calls, not a deep recursion's worth.
const envPoolMax = 16

// pushFrameGrow is the frame push of callCode when ev.frames is full,
// out of line.
//
//go:noinline
func (ev *Evaluator) pushFrameGrow(lc *lambdaCode, pos syntax.Pos) {
	ev.frames = append(ev.frames, callFrame{lc, pos})
}

// throwStackOverflowInCall is throwStackOverflow for callCode, which has
// pushed the call's frame already: the trace is that of the caller, as
// when the frame came after the check.
//
//go:noinline
func (ev *Evaluator) throwStackOverflowInCall() {
	ev.frames = ev.frames[:len(ev.frames)-1]
	ev.throwStackOverflow()
}

// formalsEnv is the environment of a call of a set-pattern lambda. It is
// kept out of callCode, whose frame every nested call holds while its
// body runs; the call's position is that of the frame callCode pushed,
// which is off the stack while the argument is taken apart (an error
// there, forcing the argument included, is the caller's, as before).
//
//go:noinline
func (ev *Evaluator) formalsEnv(lc *lambdaCode, cenv *Env, arg Value) *Env {
	env := newEnv(cenv, lc.nslots)
	f := ev.frames[len(ev.frames)-1]
	ev.frames = ev.frames[:len(ev.frames)-1]
	ev.bindFormals(lc, env, arg, f.pos)
	ev.frames = append(ev.frames, f)
	return env
}

// bindFormals fills env from a set pattern's argument. It is kept out of
// callCode, whose frame every nested call holds while its body runs.
//
//go:noinline
func (ev *Evaluator) bindFormals(lc *lambdaCode, env *Env, arg Value, pos syntax.Pos) {
	a := ev.Force(arg)
	as, ok := a.(*Attrs)
	if !ok {
		ev.throwAt(pos, "value is %s while a set was expected", showType(a))
	}
	used := 0
	own, j := as.own(), 0
	merge := as.ov == nil && len(own) > 8
	for k := range lc.formals {
		f := &lc.formals[k]
		var x *Attr
		if merge {
			// formals and attributes are both sorted: walk them together
			for j < len(own) && own[j].key.lessName(f.key.pre, f.name) {
				j++
			}
			if j < len(own) && own[j].key.isName(f.key.pre, f.name) {
				x = &own[j]
			}
		} else {
			x = as.lookupHinted(f.name, &f.hint)
		}
		if x != nil {
			*env.slot(f.slot) = x.Val
			used++
		} else if f.def != nil {
			*env.slot(f.slot) = nil
		} else {
			ev.throwAt(pos, "%s called without required argument '%s'", lambdaNamePos(lc), f.name)
		}
	}
	for _, f := range lc.formals {
		if s := env.slot(f.slot); *s == nil {
			if f.alias > 0 {
				// every formal's slot was written above (value or nil)
				if v := env.get(f.alias - 1); v != nil {
					*s = v
					continue
				}
			}
			*s = f.def(ev, env)
		}
	}
	if !lc.ellipsis && used < as.Len() {
		for _, x := range as.All() {
			found := false
			for _, f := range lc.formals {
				if f.name == x.Name() {
					found = true
					break
				}
			}
			if !found {
				formals := make([]string, len(lc.formals))
				for i := range lc.formals {
					formals[i] = lc.formals[i].name
				}
				panic(&Error{Kind: ErrEval, Msg: fmt.Sprintf("%s called with unexpected argument '%s'", lambdaNamePos(lc), x.Name()),
					Pos: pos, Suggest: suggestNames(formals, x.Name())})
			}
		}
	}
	if lc.atSlot >= 0 {
		*env.slot(lc.atSlot) = arg
	}
}

// lambdaNamePos names a function in C++ Nix 2.8's messages about its
// arguments.
func lambdaNamePos(lc *lambdaCode) string {
	if lc.name != "" {
		return "'" + lc.name + "' at " + lc.pos.InMessage()
	}
	return "anonymous function at " + lc.pos.InMessage()
}

// lambdaTrace is the --show-trace line of a call of lc, Nix 2.8's.
func lambdaTrace(lc *lambdaCode) string {
	if lc.name != "" {
		return "while evaluating '" + lc.name + "'"
	}
	return "while evaluating anonymous lambda"
}
