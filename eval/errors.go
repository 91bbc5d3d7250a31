package eval

import (
	"fmt"
	"strings"

	"github.com/tvix-go/tvix/eval/syntax"
)

// ErrorKind classifies evaluation errors; only ErrThrow and ErrAssert can
// be caught by builtins.tryEval.
type ErrorKind int

const (
	ErrEval ErrorKind = iota // type errors, missing attributes, ...
	ErrThrow
	ErrAssert
	ErrAbort
	ErrInfiniteRecursion
	ErrStackOverflow
	ErrParse
)

// TraceFrame is one "while evaluating" line of an error trace.
type TraceFrame struct {
	Pos syntax.Pos
	Msg string
}

// Error is an evaluation error with the position it happened at.
type Error struct {
	Kind  ErrorKind
	Msg   string
	Pos   syntax.Pos
	Trace []TraceFrame
	// Cause keeps a parse error or IO error for errors.As.
	Cause error
}

func (e *Error) Unwrap() error { return e.Cause }

func (e *Error) Catchable() bool { return e.Kind == ErrThrow || e.Kind == ErrAssert }

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Msg)
	if e.Pos.IsValid() {
		fmt.Fprintf(&b, "\n\n       at %s:\n\n", e.Pos)
		for _, l := range strings.Split(strings.TrimRight(e.Pos.Snippet(), "\n"), "\n") {
			b.WriteString("       " + l + "\n")
		}
	}
	return b.String()
}

// Format renders the error as nix-instantiate does, with the trace when
// showTrace is set.
func (e *Error) Format(showTrace bool) string {
	var b strings.Builder
	b.WriteString("error: ")
	b.WriteString(strings.TrimRight(e.Error(), "\n"))
	if showTrace {
		for _, f := range e.Trace {
			fmt.Fprintf(&b, "\n\n       … %s", f.Msg)
			if f.Pos.IsValid() {
				fmt.Fprintf(&b, "\n\n       at %s:\n", f.Pos)
				for _, l := range strings.Split(strings.TrimRight(f.Pos.Snippet(), "\n"), "\n") {
					b.WriteString("\n       " + l)
				}
			}
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

// Throwf aborts evaluation with an evaluation error (not catchable).
func (ev *Evaluator) Throwf(format string, args ...any) {
	panic(&Error{Kind: ErrEval, Msg: fmt.Sprintf(format, args...), Pos: ev.curPos})
}

// ThrowKind aborts evaluation with an error of the given kind.
func (ev *Evaluator) ThrowKind(kind ErrorKind, format string, args ...any) {
	panic(&Error{Kind: kind, Msg: fmt.Sprintf(format, args...), Pos: ev.curPos})
}

func (ev *Evaluator) throwAt(pos syntax.Pos, format string, args ...any) {
	panic(&Error{Kind: ErrEval, Msg: fmt.Sprintf(format, args...), Pos: pos})
}

func (ev *Evaluator) typeError(want string, got Value) {
	ev.Throwf("value is %s while %s was expected", showType(got), want)
}
