package eval

import "github.com/tvix-go/tvix/eval/syntax"

// forceItem forces a list element and stores the value in place of the
// thunk: lists are immutable, so this only drops the indirection (and
// lets the thunk be collected).
func (ev *Evaluator) forceItem(l *List, i int) Value {
	v := l.Items[i]
	if t, ok := v.(*Thunk); ok {
		v = ev.forceThunk(t)
		if !isFunction(v) {
			l.Items[i] = v
		}
	}
	return v
}

// isFunction tells the values whose cell (the thunk that computed them)
// must stay in a list: C++ Nix compares functions in lists and sets by
// cell, so a thunk replaced by its function would no longer be equal to
// itself elsewhere (`[ t ] == l` after `filter isFunction l`).
func isFunction(v Value) bool {
	switch v.(type) {
	case *Lambda, *PrimOp, *PrimOpApp:
		return true
	}
	return false
}

// Force evaluates v to weak head normal form.
func (ev *Evaluator) Force(v Value) Value {
	// small enough to be inlined (forceThunk returns a done thunk's
	// value first): no frame of its own on the recursion path
	if t, ok := v.(*Thunk); ok {
		return ev.forceThunk(t)
	}
	return v
}

func (ev *Evaluator) forceThunk(t *Thunk) Value {
	// The checks come before the code and environment are loaded: held
	// across the calls the checks may make, they took slots of this
	// frame, which is on the stack once per nested force.
	if t.env == nil {
		if _, ok := t.v.(code); !ok {
			return t.v
		}
	} else if t.env == blackhole {
		ev.throwInfiniteRecursion()
	}
	ev.depth++
	if ev.depth > ev.maxDepth {
		ev.throwStackOverflow()
	}
	if ev.ticks--; ev.ticks == 0 {
		ev.periodic()
	}
	env := t.env
	c, ok := t.v.(code)
	if !ok {
		c = env.applyCode()
	}
	t.env = blackhole
	// A failure leaves t running; tryEval and the API boundary restore
	// the thunks on this stack so that forcing t again re-evaluates it
	// (and fails again). (v stays: an apply thunk's code reads it.)
	if rs, n := ev.running, len(ev.running); n < cap(rs) {
		rs = rs[:n+1]
		rs[n] = runningThunk{t, env}
		ev.running = rs
	} else {
		ev.pushRunningGrow(t, env)
	}
	v := c(ev, env)
	if t2, ok := v.(*Thunk); ok {
		v = ev.Force(t2)
	}
	ev.running[len(ev.running)-1] = runningThunk{}
	ev.running = ev.running[:len(ev.running)-1]
	ev.depth--
	t.v, t.env = v, nil
	return v
}

// pushRunningGrow is forceThunk's push on ev.running when it is full,
// out of line.
//
//go:noinline
func (ev *Evaluator) pushRunningGrow(t *Thunk, env *Env) {
	ev.running = append(ev.running, runningThunk{t, env})
}

//go:noinline
func (ev *Evaluator) throwInfiniteRecursion() {
	ev.ThrowKind(ErrInfiniteRecursion, "infinite recursion encountered")
}

func (ev *Evaluator) forceBool(v Value, pos syntax.Pos) bool {
	v = ev.Force(v)
	b, ok := v.(Bool)
	if !ok {
		ev.notA(v, "a Boolean", pos)
	}
	return bool(b)
}

// notA throws the type error of the force functions, out of line: where
// they are inlined, the formatting's arguments took room in the frame.
//
//go:noinline
func (ev *Evaluator) notA(v Value, want string, pos syntax.Pos) {
	ev.throwAt(pos, "value is %s while %s was expected", showType(v), want)
}

// ForceAttrs forces v and checks it is an attrset.
func (ev *Evaluator) ForceAttrs(v Value) *Attrs { return ev.forceAttrs(v) }

func (ev *Evaluator) forceAttrs(v Value) *Attrs {
	if t, ok := v.(*Thunk); ok {
		v = ev.forceThunk(t) // not Force: one frame less on the recursion path
	}
	a, ok := v.(*Attrs)
	if !ok {
		ev.typeError("a set", v)
	}
	return a
}

func (ev *Evaluator) forceAttrsAt(v Value, pos syntax.Pos) *Attrs {
	v = ev.Force(v)
	a, ok := v.(*Attrs)
	if !ok {
		ev.notA(v, "a set", pos)
	}
	return a
}

func (ev *Evaluator) ForceList(v Value) *List { return ev.forceListAt(v, ev.curPos) }

func (ev *Evaluator) forceListAt(v Value, pos syntax.Pos) *List {
	v = ev.Force(v)
	l, ok := v.(*List)
	if !ok {
		ev.notA(v, "a list", pos)
	}
	return l
}

func (ev *Evaluator) ForceInt(v Value) int64 {
	v = ev.Force(v)
	i, ok := v.(Int)
	if !ok {
		ev.typeError("an integer", v)
	}
	return int64(i)
}

func (ev *Evaluator) ForceBool(v Value) bool { return ev.forceBool(v, ev.curPos) }

// ForceString forces a string (no coercion) and returns it with context.
func (ev *Evaluator) ForceString(v Value) *String {
	v = ev.Force(v)
	s, ok := v.(*String)
	if !ok {
		ev.typeError("a string", v)
	}
	return s
}

func (ev *Evaluator) forceFunction(v Value) Value {
	v = ev.Force(v)
	switch x := v.(type) {
	case *Lambda, *PrimOp, *PrimOpApp:
		return v
	case *Attrs:
		if _, ok := x.Get("__functor"); ok {
			return v
		}
	}
	ev.typeError("a function", v)
	return nil
}

// dataDepthWeight is what one level of nested data costs against
// MaxCallDepth in deepSeq / toJSON: with the default limit, data nested
// about 60000 deep is a stack-overflow error (as it is for Nix 2.8),
// while 100000 nested calls still work.
const dataDepthWeight = 4

// ForceDeep evaluates v completely (deepSeq, --strict).
func (ev *Evaluator) ForceDeep(v Value) Value {
	seen := map[any]bool{}
	// the attributes being forced, outermost first: an error in one gets
	// C++ Nix's "while evaluating the attribute" lines, innermost first
	var path []*Attr
	defer ev.traceAttrPath(ev.mark(), &path)
	var rec func(v Value)
	rec = func(v Value) {
		v = ev.Force(v)
		switch x := v.(type) {
		case *List:
			if seen[x] {
				return
			}
			seen[x] = true
			ev.depth += dataDepthWeight
			if ev.depth > ev.maxDepth {
				ev.ThrowKind(ErrStackOverflow, "stack overflow")
			}
			for _, it := range x.Items {
				rec(it)
			}
			ev.depth -= dataDepthWeight
		case *Attrs:
			if seen[x] {
				return
			}
			seen[x] = true
			ev.depth += dataDepthWeight
			if ev.depth > ev.maxDepth {
				ev.ThrowKind(ErrStackOverflow, "stack overflow")
			}
			all := x.All()
			for i := range all {
				path = append(path, &all[i])
				rec(all[i].Val)
				path = path[:len(path)-1]
			}
			ev.depth -= dataDepthWeight
		}
	}
	rec(v)
	return ev.Force(v)
}

// traceAttrPath, deferred by ForceDeep, adds a trace line for each
// attribute of path to an error passing through, after the calls made
// inside the innermost.
func (ev *Evaluator) traceAttrPath(m stackMark, path *[]*Attr) {
	r := recover()
	if r == nil {
		return
	}
	if e, ok := r.(*Error); ok && len(*path) > 0 {
		lines := make([]TraceFrame, len(*path))
		for i, a := range *path {
			lines[len(lines)-1-i] = selTrace(a.Name(), a.Pos()) // innermost first
		}
		ev.traceThen(e, m, lines...)
	}
	panic(r)
}
