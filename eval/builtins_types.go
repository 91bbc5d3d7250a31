package eval

// registerTypes adds type tests and introspection of values.
func registerTypes(reg registerFunc) {
	reg("typeOf", 1, func(ev *Evaluator, a []Value) Value { return Str(TypeName(ev.Force(a[0]))) })
	isType := func(name string, f func(Value) bool) {
		reg(name, 1, func(ev *Evaluator, a []Value) Value { return Bool(f(ev.Force(a[0]))) })
	}
	isType("isNull", func(v Value) bool { _, ok := v.(Null); return ok })
	isType("isBool", func(v Value) bool { _, ok := v.(Bool); return ok })
	isType("isInt", func(v Value) bool { _, ok := v.(Int); return ok })
	isType("isFloat", func(v Value) bool { _, ok := v.(Float); return ok })
	isType("isString", func(v Value) bool { _, ok := v.(*String); return ok })
	isType("isPath", func(v Value) bool { _, ok := v.(Path); return ok })
	isType("isList", func(v Value) bool { _, ok := v.(*List); return ok })
	isType("isAttrs", func(v Value) bool { _, ok := v.(*Attrs); return ok })
	isType("isFunction", func(v Value) bool {
		switch v.(type) {
		case *Lambda, *PrimOp, *PrimOpApp:
			return true
		}
		return false
	})

	reg("unsafeGetAttrPos", 2, func(ev *Evaluator, a []Value) Value {
		name := ev.str(a[0])
		as := ev.forceAttrs(a[1])
		x := as.Lookup(name)
		if x == nil || x.Pos() == nil {
			return Null{}
		}
		return posAttrs(*x.Pos())
	})
	reg("functionArgs", 1, func(ev *Evaluator, a []Value) Value {
		switch f := ev.Force(a[0]).(type) {
		case *Lambda:
			if f.fn.simple {
				return emptyAttrs
			}
			out := make([]Attr, len(f.fn.formals))
			for i, fm := range f.fn.formals {
				out[i] = Attr{key: fm.key, Val: Bool(fm.def != nil)}
			}
			return mkAttrs(out)
		case *PrimOp, *PrimOpApp:
			return emptyAttrs
		default:
			ev.Throwf("'functionArgs' requires a function")
		}
		return nil
	})
}
