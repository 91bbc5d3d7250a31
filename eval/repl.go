package eval

import (
	"fmt"
	"strings"
)

// Repl keeps the state of an interactive session.
type Repl struct {
	ev    *Evaluator
	dir   string
	scope []Attr
}

func NewRepl(ev *Evaluator, dir string) *Repl { return &Repl{ev: ev, dir: dir} }

// Line handles one line of input and returns what to print.
func (r *Repl) Line(line string) string {
	line = strings.TrimSpace(line)
	switch {
	case line == "":
		return ""
	case line == ":?" || line == ":help":
		return "  <expr>        evaluate and print\n  x = <expr>    bind a variable\n  :l <path>     load a file's attributes into scope\n  :p <expr>     evaluate and print recursively\n  :t <expr>     show the type\n  :q            quit"
	case strings.HasPrefix(line, ":l "):
		p := strings.TrimSpace(line[3:])
		// Nix calls a file that is a function with its defaults, so
		// `{ pkgs ? import <nixpkgs> {} }: ...` loads like nix repl does.
		v, err := r.ev.protect(func() Value {
			return r.ev.AutoCall(r.ev.evalSource(newSource("«string»", "import "+p), r.dir, mkAttrs(r.scope)), NewAttrs(nil))
		})
		if err != nil {
			if e, ok := err.(*Error); ok {
				return replError(e)
			}
			return err.Error()
		}
		a, ok := v.(*Attrs)
		if !ok {
			return "error: the file does not evaluate to an attribute set"
		}
		r.scope = NewAttrs(append(append([]Attr(nil), r.scope...), a.All()...)).All()
		return fmt.Sprintf("Added %d variables.", a.Len())
	case strings.HasPrefix(line, ":t "):
		v, err := r.eval(line[3:])
		if err != nil {
			return err.Error()
		}
		return showType(v)
	case strings.HasPrefix(line, ":p "):
		v, err := r.eval(line[3:])
		if err != nil {
			return err.Error()
		}
		_, err = r.ev.Run(func() Value { return r.ev.ForceDeep(v) })
		if err != nil {
			return err.Error()
		}
		return PrintValue(r.ev, v, true)
	}
	if i := strings.Index(line, "="); i > 0 && !strings.ContainsAny(line[:i], " \t=!<>") || i > 0 && isBinding(line[:i]) {
		name := strings.TrimSpace(line[:i])
		v, err := r.evalLazy(line[i+1:])
		if err != nil {
			return err.Error()
		}
		r.scope = NewAttrs(append(append([]Attr(nil), r.scope...), MkAttr(name, v))).All()
		return ""
	}
	v, err := r.eval(line)
	if err != nil {
		if e, ok := err.(*Error); ok {
			return replError(e)
		}
		return err.Error()
	}
	return PrintValue(r.ev, v, false)
}

func isBinding(s string) bool {
	s = strings.TrimSpace(s)
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(isIdentStart(c) || c >= '0' && c <= '9' && i > 0 || c == '-' || c == '\'') {
			return false
		}
	}
	return true
}

func (r *Repl) evalLazy(text string) (Value, error) {
	return r.ev.protect(func() Value {
		return r.ev.evalSource(newSource("«string»", text), r.dir, mkAttrs(r.scope))
	})
}

func (r *Repl) eval(text string) (Value, error) {
	return r.ev.protect(func() Value {
		return r.ev.Force(r.ev.evalSource(newSource("«string»", text), r.dir, mkAttrs(r.scope)))
	})
}

// replError is an error as nix repl prints it: without the hint at
// --show-trace, which nix-instantiate adds after the message.
func replError(e *Error) string {
	return strings.TrimSuffix(e.Format(false), "\n"+showTraceHint)
}
