package eval

import (
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/tvix-go/tvix/eval/syntax"
)

// callFrame is a function call in progress, for error traces.
type callFrame struct {
	lc  *lambdaCode
	pos syntax.Pos
}

type stackMark struct{ running, frames, depth, args int }

func (ev *Evaluator) mark() stackMark {
	return stackMark{len(ev.running), len(ev.frames), ev.depth, len(ev.args)}
}

// traceFrom records the calls that were in progress when e was raised.
func (ev *Evaluator) traceFrom(e *Error, m stackMark) {
	fs := ev.frames[m.frames:]
	if len(fs) > 32 {
		fs = fs[len(fs)-32:]
	}
	for i := len(fs) - 1; i >= 0; i-- {
		f := fs[i]
		e.Trace = append(e.Trace, TraceFrame{Pos: f.lc.pos, Msg: "while calling " + lambdaName(f.lc)})
		if f.pos.IsValid() {
			e.Trace = append(e.Trace, TraceFrame{Pos: f.pos, Msg: "from call site"})
		}
	}
}

// addErrorContext adds builtins.addErrorContext's message to an error
// passing through it, after the calls made inside it, as Nix's
// --show-trace lists them. The thunks the error interrupted are reset
// first so that the message can be evaluated.
func (ev *Evaluator) addErrorContext(e *Error, m stackMark, msg Value) {
	ev.traceFrom(e, m)
	ev.unwindTo(m)
	func() {
		defer func() {
			if r := recover(); r != nil {
				// A message that fails to evaluate is left out; the
				// original error is what matters.
				ev.unwindTo(m)
			}
		}()
		s := ev.coerceToString(msg, ev.curPos, false, false)
		e.Trace = append(e.Trace, TraceFrame{Msg: s.S})
	}()
}

func (ev *Evaluator) unwindTo(m stackMark) {
	ev.unwind(m.running, m.depth)
	clear(ev.frames[m.frames:])
	ev.frames = ev.frames[:m.frames]
	if len(ev.args) > m.args {
		clear(ev.args[m.args:])
		ev.args = ev.args[:m.args]
	}
}

// unwind resets the thunks that were being forced when an error
// propagated past them, down to the given stack height.
func (ev *Evaluator) unwind(height, depth int) {
	for _, r := range ev.running[height:] {
		if r.t.running() {
			r.t.env = r.env
		}
	}
	clear(ev.running[height:])
	ev.running = ev.running[:height]
	ev.depth = depth
}

// protect runs f, turning evaluation panics into errors. Evaluation runs
// with a big stack budget so deep (but bounded) recursion works.
func (ev *Evaluator) protect(f func() Value) (v Value, err error) {
	done := make(chan struct{})
	oldBase := ev.stackBase
	ev.stackBase = ev.depth
	defer func() { ev.stackBase = oldBase }()
	go func() {
		defer close(done)
		m := ev.mark()
		defer func() {
			r := recover()
			// Frames an addErrorContext below already recorded were
			// dropped from ev.frames; the rest follow its context lines.
			if e, ok := r.(*Error); ok {
				ev.traceFrom(e, m)
			}
			ev.unwindTo(m)
			if r != nil {
				if e, ok := r.(*Error); ok {
					err = e
					return
				}
				if se, ok := r.(error); ok && strings.Contains(se.Error(), "stack") {
					err = &Error{Kind: ErrStackOverflow, Msg: "stack overflow"}
					return
				}
				err = &Error{Kind: ErrEval, Msg: fmt.Sprintf("internal error: %v\n%s", r, debug.Stack())}
			}
		}()
		v = f()
	}()
	<-done
	return v, err
}

// maxStack is the Go stack evaluation may take: deeply nested lazy data
// (foldl over long lists, long // chains) recurses deeply; MaxCallDepth
// keeps it below this.
const maxStack = 4 << 30

// raiseMaxStack lifts the process's stack limit to maxStack when an
// evaluator is made (not when the package is imported); a larger limit
// the program set stays.
func raiseMaxStack() {
	if old := debug.SetMaxStack(maxStack); old > maxStack {
		debug.SetMaxStack(old)
	}
}

// runningThunk remembers how to restart a thunk whose evaluation failed.
type runningThunk struct {
	t   *Thunk
	env *Env
}

// StackDepth is how deeply calls and thunk forcing are nested (in the
// units of Options.MaxCallDepth) on the current goroutine: since the
// evaluation started or last moved to a fresh stack with OnNewStack.
func (ev *Evaluator) StackDepth() int { return ev.depth - ev.stackBase }

// OnNewStack runs f on a goroutine of its own and waits for it; a panic
// (an evaluation error) is passed on. A builtin through which evaluation
// recurses deeply (derivationStrict: a chain of 10,000 derivations, each
// forcing the one before it) can go on on a fresh, small stack when
// StackDepth is large. One goroutine's stack would double, be copied at
// each doubling (old and new copy both resident for a moment), and keep
// its largest size to the end; stacks of a few hundred KB are copied
// cheaply, sized closer to what they hold, and freed as the recursion
// unwinds.
func (ev *Evaluator) OnNewStack(f func() Value) Value {
	var v Value
	var p any
	panicked := true
	oldBase := ev.stackBase
	ev.stackBase = ev.depth
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if panicked {
				p = recover()
			}
		}()
		v = f()
		panicked = false
	}()
	<-done
	ev.stackBase = oldBase
	if panicked {
		panic(p)
	}
	return v
}
