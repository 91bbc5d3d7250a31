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

// derivationNixName is the source name of the derivation builtin (see
// Options.NixBuiltins): its attributes get no selection trace lines.
const derivationNixName = "<nix/derivation.nix>"

// selFrame is a selection forcing the attribute it selected (see
// forceSelected).
type selFrame struct {
	path   string      // the names selected, as Nix shows them
	pos    *syntax.Pos // the attribute's
	frames int         // len(ev.frames) then: the calls it is inside
}

type stackMark struct{ running, frames, depth, args, sels int }

func (ev *Evaluator) mark() stackMark {
	return stackMark{len(ev.running), len(ev.frames), ev.depth, len(ev.args), len(ev.sels)}
}

// traceFrom records the calls and the selections that were in progress
// when e was raised, innermost first, as C++ Nix's trace lists them (the
// calls Nix records only with --show-trace, the selections always).
func (ev *Evaluator) traceFrom(e *Error, m stackMark) {
	fs := ev.frames[m.frames:]
	ss := ev.sels[min(m.sels, len(ev.sels)):]
	addSel := func(s selFrame) {
		e.Trace = append(e.Trace, selTrace(s.path, s.pos))
	}
	if len(ss) > 32 {
		ss = ss[len(ss)-32:]
	}
	first := m.frames
	if len(fs) > 32 {
		first += len(fs) - 32
		fs = fs[len(fs)-32:]
	}
	j := len(ss) - 1
	for i := len(fs) - 1; i >= 0; i-- {
		// the selections made inside this call come first
		for ; j >= 0 && ss[j].frames > first+i; j-- {
			addSel(ss[j])
		}
		f := fs[i]
		// (a call without a position, as lazy applications make, is
		// still a line of Nix's trace, without an "at")
		e.Trace = append(e.Trace, TraceFrame{Pos: f.lc.pos, Msg: lambdaTrace(f.lc)},
			TraceFrame{Pos: f.pos, Msg: "from call site"})
	}
	for ; j >= 0; j-- {
		addSel(ss[j])
	}
}

// selTrace is Nix's "while evaluating the attribute" line of an error
// while the attribute at pos was forced: by a selection of path (or the
// set after it on the path), or by --strict / deepSeq (path its name).
func selTrace(path string, pos *syntax.Pos) TraceFrame {
	f := TraceFrame{Msg: "while evaluating the attribute '" + path + "'", nixTrace: true}
	if pos != nil {
		f.Pos = *pos
	}
	return f
}

// forceSelected forces t, the value of attribute x a selection of path
// has found, with the selection on ev.sels: C++ Nix forces the selected
// value inside the selection, and an error there gets a trace line
// naming the attribute. Attributes without a position (made by
// builtins) and those of derivation.nix get none, as in Nix.
//
//go:noinline
func (ev *Evaluator) forceSelected(t *Thunk, x *Attr, path string) Value {
	// a small frame: it is on the stack once per level of a recursion
	// through selections (fixpoints: self.a0 = self.a1 + 1 …)
	if !ev.pushSel(x, path) {
		return ev.forceThunk(t)
	}
	v := ev.forceThunk(t)
	ev.sels[len(ev.sels)-1] = selFrame{}
	ev.sels = ev.sels[:len(ev.sels)-1]
	return v
}

// pushSel puts the selection of x on ev.sels, unless x has no position
// or is derivation.nix's.
//
//go:noinline
func (ev *Evaluator) pushSel(x *Attr, path string) bool {
	pos := selectedPos(x)
	if pos == nil {
		return false
	}
	ev.sels = append(ev.sels, selFrame{path, pos, len(ev.frames)})
	return true
}

// selectedPos is the position of x for a selection's trace line, nil when
// Nix gives it none (x made by a builtin, or derivation.nix's).
func selectedPos(x *Attr) *syntax.Pos {
	if pos := x.Pos(); pos != nil && (pos.Src == nil || pos.Src.Name != derivationNixName) {
		return pos
	}
	return nil
}

// selectedValue is the value of x a selection of path returns: forced
// (see forceSelected).
func (ev *Evaluator) selectedValue(x *Attr, path string) Value {
	if t, ok := x.Val.(*Thunk); ok && !t.done() {
		return ev.forceSelected(t, x, path)
	}
	return x.Val
}

// raiseInSelection runs raise, which raises an error of a selection's
// step after prev, and adds prev's trace line to it (selectError).
//
//go:noinline
func (ev *Evaluator) raiseInSelection(prev *Attr, path string, raise func()) {
	defer func() { panic(selectError(recover(), prev, path)) }()
	raise()
}

// selectError adds the trace line of the attribute prev, from which a
// selection went on, to e, an error of the next step (the value is not
// a set, or lacks the next name), as Nix raises those inside the
// selection too.
func selectError(e any, prev *Attr, path string) any {
	if err, ok := e.(*Error); ok && prev != nil {
		if pos := selectedPos(prev); pos != nil {
			err.Trace = append(err.Trace, selTrace(path, pos))
		}
	}
	return e
}

// traceThen adds to e the calls and selections made since m, then fs
// (the lines of the construct that set m: an import, deepSeq's
// attributes), and unwinds to m.
func (ev *Evaluator) traceThen(e *Error, m stackMark, fs ...TraceFrame) {
	ev.traceFrom(e, m)
	ev.unwindTo(m)
	e.Trace = append(e.Trace, fs...)
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
		e.Trace = append(e.Trace, TraceFrame{Msg: s.S, nixTrace: true})
	}()
}

func (ev *Evaluator) unwindTo(m stackMark) {
	ev.unwind(m.running, m.depth)
	clear(ev.frames[m.frames:])
	ev.frames = ev.frames[:m.frames]
	if len(ev.sels) > m.sels {
		clear(ev.sels[m.sels:])
		ev.sels = ev.sels[:m.sels]
	}
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
	oldBase, oldGrown := ev.stackBase, ev.stackGrown
	ev.stackBase, ev.stackGrown = ev.depth, false
	defer func() { ev.stackBase, ev.stackGrown = oldBase, oldGrown }()
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
	oldBase, oldGrown := ev.stackBase, ev.stackGrown
	ev.stackBase, ev.stackGrown = ev.depth, false
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
	ev.stackBase, ev.stackGrown = oldBase, oldGrown
	if panicked {
		panic(p)
	}
	return v
}

// growStackDepth is the depth (in MaxCallDepth's units, ~180 bytes of Go
// stack each on a fold's recursion) past which the evaluation's stack is
// grown to growStackFrame's size at once. The runtime doubles a stack
// when it is full, copying it each time: foldr over 20,000 items (60,000
// deep, ~11 MB) went through 11 copies, a fifth of the evaluation's CPU
// (the copying, the frames' unwinding and the new stacks' page faults).
// Shallower evaluations, nearly all, never come here.
const growStackDepth = 2000

// growStack makes the current goroutine's stack 16 MB (the frame of
// growStackFrame, 8 MB, below what is in use, rounded up to a power of
// two) in one copy of the ~400 KB in use. The frame is never written:
// its arrays are declared on a branch not taken, so that the new stack's
// pages are touched (faulted in) only as the recursion reaches them.
//
//go:noinline
func growStack(depth int) {
	growStackFrame(-1 - depth)
}

// growStackFrame's frame is 64 arrays of 128 KB (the largest a local may
// be and stay on the stack); x is negative, so they are not zeroed.
//
//go:noinline
func growStackFrame(x int) byte {
	if x >= 0 {
		var a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15, a16, a17, a18, a19, a20, a21, a22, a23, a24, a25, a26, a27, a28, a29, a30, a31, a32, a33, a34, a35, a36, a37, a38, a39, a40, a41, a42, a43, a44, a45, a46, a47, a48, a49, a50, a51, a52, a53, a54, a55, a56, a57, a58, a59, a60, a61, a62, a63 [128 << 10]byte
		ps := [...]*[128 << 10]byte{&a0, &a1, &a2, &a3, &a4, &a5, &a6, &a7, &a8, &a9, &a10, &a11, &a12, &a13, &a14, &a15, &a16, &a17, &a18, &a19, &a20, &a21, &a22, &a23, &a24, &a25, &a26, &a27, &a28, &a29, &a30, &a31, &a32, &a33, &a34, &a35, &a36, &a37, &a38, &a39, &a40, &a41, &a42, &a43, &a44, &a45, &a46, &a47, &a48, &a49, &a50, &a51, &a52, &a53, &a54, &a55, &a56, &a57, &a58, &a59, &a60, &a61, &a62, &a63}
		var r byte
		for _, p := range ps {
			p[x&1023] = byte(x)
			r += p[(x>>10)&1023]
		}
		return r
	}
	return 0
}
