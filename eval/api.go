package eval

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/tvix-go/tvix/eval/syntax"
)

// PrintSyntax renders a parsed expression (nix-instantiate --parse).
func PrintSyntax(n syntax.Node) string { return syntax.Print(n) }

// FindAttrPath selects a dotted attribute path (list indices allowed),
// auto-calling functions on the way, as nix-instantiate -A does. Call it
// inside Run.
func (ev *Evaluator) FindAttrPath(v Value, path string, autoArgs *Attrs) Value {
	v = ev.Force(v)
	if path == "" {
		return v
	}
	for _, key := range splitAttrPath(path) {
		v = ev.Force(ev.AutoCall(v, autoArgs))
		if n, err := strconv.Atoi(key); err == nil {
			l, ok := v.(*List)
			if !ok {
				ev.Throwf("the expression selected by the selection path '%s' should be a list but is %s", path, showType(v))
			}
			if n < 0 || n >= len(l.Items) {
				ev.Throwf("list index %d in selection path '%s' is out of range", n, path)
			}
			v = ev.Force(l.Items[n])
			continue
		}
		a, ok := v.(*Attrs)
		if !ok {
			ev.Throwf("the expression selected by the selection path '%s' should be a set but is %s", path, showType(v))
		}
		x, ok := a.Get(key)
		if !ok {
			ev.Throwf("attribute '%s' in selection path '%s' not found", key, path)
		}
		v = ev.Force(x)
	}
	return v
}

func splitAttrPath(s string) []string {
	var out []string
	cur := ""
	quoted := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			quoted = !quoted
		case c == '.' && !quoted:
			out = append(out, cur)
			cur = ""
		default:
			cur += string(c)
		}
	}
	return append(out, cur)
}

// AutoCall calls a function taking a set pattern with the automatic
// arguments (--arg/--argstr), as nix-instantiate does.
func (ev *Evaluator) AutoCall(v Value, args *Attrs) Value {
	v = ev.Force(v)
	if a, ok := v.(*Attrs); ok {
		if f, ok := a.Get("__functor"); ok {
			g := ev.Force(ev.call(ev.Force(f), a, ev.curPos))
			return ev.AutoCall(&PrimOpApp{Op: &PrimOp{Name: "functor", Arity: 2, Fn: func(ev *Evaluator, xs []Value) Value {
				return ev.call(ev.Force(xs[0]), xs[1], ev.curPos)
			}}, Args: []Value{g}}, args)
		}
		return v
	}
	l, ok := v.(*Lambda)
	if !ok || l.fn.simple {
		return v
	}
	var as []Attr
	if l.fn.ellipsis {
		as = append(as, args.All()...)
	} else {
		for _, f := range l.fn.formals {
			if x, ok := args.Get(f.name); ok {
				as = append(as, Attr{Name: f.name, Val: x})
			} else if f.def == nil {
				ev.Throwf("cannot evaluate a function that has an argument without a value ('%s')", f.name)
			}
		}
	}
	return ev.Force(ev.call(l, NewAttrs(as), l.fn.pos))
}

// ToJSON renders v as JSON (forcing it deeply). Call inside Run.
func (ev *Evaluator) ToJSON(v Value) string {
	var b bytes.Buffer
	var ctx Context
	ev.toJSON(&b, v, &ctx)
	return b.String()
}

// ToXML renders v as nix-instantiate --xml does: with strict, values are
// forced deeply; with location, attributes and functions carry their
// source positions.
func (ev *Evaluator) ToXML(v Value, strict, location bool) string {
	var b bytes.Buffer
	var ctx Context
	b.WriteString("<?xml version='1.0' encoding='utf-8'?>\n<expr>\n")
	ev.toXML(&b, v, 1, &ctx, &xmlOpts{strict: strict, location: location, drvsSeen: map[*Attrs]bool{}})
	b.WriteString("</expr>\n")
	return b.String()
}

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
		v, err := r.eval("import " + p)
		if err != nil {
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
		r.scope = NewAttrs(append(append([]Attr(nil), r.scope...), Attr{Name: name, Val: v})).All()
		return ""
	}
	v, err := r.eval(line)
	if err != nil {
		if e, ok := err.(*Error); ok {
			return e.Format(false)
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
