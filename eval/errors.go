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
	// nixTrace: C++ Nix records this line also without --show-trace
	// (not a call's), and then hints at the option
	nixTrace bool
}

// NixTrace marks a frame C++ Nix records without --show-trace too (see
// Format), for frames made outside the package.
func NixTrace(pos syntax.Pos, msg string) TraceFrame {
	return TraceFrame{Pos: pos, Msg: msg, nixTrace: true}
}

// Error is an evaluation error with the position it happened at.
type Error struct {
	Kind  ErrorKind
	Msg   string
	Pos   syntax.Pos
	Trace []TraceFrame
	// Suggest is the "Did you mean …?" after the position (suggestNames)
	Suggest string
	// Cause keeps a parse error or IO error for errors.As.
	Cause error
}

func (e *Error) Unwrap() error { return e.Cause }

func (e *Error) Catchable() bool { return e.Kind == ErrThrow || e.Kind == ErrAssert }

func (e *Error) Error() string {
	var b strings.Builder
	// a message of several lines has them indented under its first, as
	// Nix indents everything after "error: "
	for i, l := range strings.Split(e.Msg, "\n") {
		if i > 0 {
			b.WriteString("\n")
			if l != "" {
				b.WriteString("       ")
			}
		}
		b.WriteString(l)
	}
	code := false
	if e.Pos.IsValid() {
		code = writeAt(&b, e.Pos)
	}
	if e.Suggest != "" {
		// on a line of its own after the code or the message; after an
		// "at" line without code Nix puts it on that line
		if code || !e.Pos.IsValid() {
			b.WriteString("\n       ")
		}
		b.WriteString("Did you mean " + e.Suggest + "?")
	}
	b.WriteString("\n")
	return b.String()
}

// writeAt writes the "at" line of pos and the code around it, indented
// under the message as nix-instantiate indents them; without a newline
// after the last line. It reports whether there was code to show.
func writeAt(b *strings.Builder, pos syntax.Pos) bool {
	fmt.Fprintf(b, "\n\n       at %s:", pos)
	sn := pos.Snippet()
	if sn != "" {
		b.WriteString("\n")
		for _, l := range strings.Split(strings.TrimSuffix(sn, "\n"), "\n") {
			// (Nix trims each line's trailing blanks, an empty line's "| " too)
			b.WriteString("\n       " + strings.TrimRight(l, " \t"))
		}
	}
	return sn != ""
}

// showTraceHint is what nix-instantiate prints after an error with trace
// lines when --show-trace is off.
const showTraceHint = "(use '--show-trace' to show detailed location information)"

// Format renders the error as nix-instantiate does, with the trace when
// showTrace is set.
func (e *Error) Format(showTrace bool) string {
	var b strings.Builder
	b.WriteString("error: ")
	b.WriteString(strings.TrimRight(e.Error(), "\n"))
	if !showTrace {
		for _, f := range e.Trace {
			if f.nixTrace {
				b.WriteString("\n" + showTraceHint)
				break
			}
		}
	}
	if showTrace {
		for _, f := range e.Trace {
			fmt.Fprintf(&b, "\n\n       … %s", f.Msg)
			if f.Pos.IsValid() {
				writeAt(&b, f.Pos)
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

// throwNoPos raises an error C++ Nix reports without a position (system
// errors, comparisons).
func (ev *Evaluator) throwNoPos(format string, args ...any) {
	panic(&Error{Kind: ErrEval, Msg: fmt.Sprintf(format, args...)})
}

func (ev *Evaluator) throwAt(pos syntax.Pos, format string, args ...any) {
	panic(&Error{Kind: ErrEval, Msg: fmt.Sprintf(format, args...), Pos: pos})
}

func (ev *Evaluator) typeError(want string, got Value) {
	ev.Throwf("value is %s while %s was expected", showType(got), want)
}
