package eval

import "strconv"

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
				as = append(as, Attr{key: f.key.noPos(), Val: x})
			} else if f.def == nil {
				ev.Throwf("cannot evaluate a function that has an argument without a value ('%s')", f.name)
			}
		}
	}
	return ev.Force(ev.call(l, NewAttrs(as), l.fn.pos))
}
