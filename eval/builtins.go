package eval

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// globalNames are builtins also reachable without `builtins.`.
var globalNames = []string{"abort", "baseNameOf", "derivation", "derivationStrict", "dirOf", "fetchGit",
	"fetchMercurial", "fetchTarball", "fetchTree", "fromTOML", "import", "isNull", "map", "placeholder",
	"removeAttrs", "scopedImport", "throw", "toString"}

// storeBuiltins need a store; the glue package installs them. Until then
// they fail with a clear message.
var storeBuiltins = map[string]int{"derivation": 1, "derivationStrict": 1, "toFile": 2, "path": 1, "filterSource": 2,
	"storePath": 1, "fetchurl": 1, "fetchTarball": 1, "fetchGit": 1, "fetchMercurial": 1, "fetchTree": 1}

func (ev *Evaluator) initBuiltins() {
	bs := map[string]Value{}
	reg := func(name string, arity int, fn PrimOpFn) { bs[name] = &PrimOp{Name: name, Arity: arity, Fn: fn} }
	for name, ar := range storeBuiltins {
		n := name
		reg(n, ar, func(ev *Evaluator, args []Value) Value {
			ev.Throwf("builtins.%s needs a Nix store, which this evaluator does not have", n)
			return nil
		})
	}
	registerCore(reg)
	registerStrings(reg)
	registerData(reg)
	bs["true"] = Bool(true)
	bs["false"] = Bool(false)
	bs["null"] = Null{}
	bs["currentSystem"] = Str(ev.opts.CurrentSystem)
	bs["currentTime"] = Int(time.Now().Unix())
	bs["langVersion"] = Int(6)
	bs["nixVersion"] = Str("2.8.0")
	bs["storeDir"] = Str(ev.opts.StoreDir)
	bs["nixPath"] = ev.nixPathValue()
	for k, v := range ev.opts.Builtins {
		bs[k] = v
	}
	as := make([]Attr, 0, len(bs)+1)
	for k, v := range bs {
		as = append(as, Attr{Name: k, Val: v})
	}
	// builtins.builtins is the set itself; patch after building.
	as = append(as, Attr{Name: "builtins"})
	ev.builtins = NewAttrs(as)
	ev.builtins.Lookup("builtins").Val = ev.builtins

	consts := map[string]Value{}
	for _, a := range ev.builtins.All() {
		consts["__"+a.Name] = a.Val
	}
	for _, n := range append(append([]string{"builtins", "true", "false", "null"}, globalNames...), ev.opts.GlobalBuiltins...) {
		if v, ok := ev.builtins.Get(n); ok {
			consts[n] = v
		}
	}
	ev.global = &scope{consts: consts}
	for name, src := range ev.opts.NixBuiltins {
		n, s := name, src
		t := NewThunk(func(ev *Evaluator) Value {
			return ev.Force(ev.evalSource(newSource("<nix/"+n+".nix>", s), "/", nil))
		})
		ev.builtinSlot(n).Val = t
		consts[n] = t
		consts["__"+n] = t
	}
}

func (ev *Evaluator) builtinSlot(name string) *Attr {
	if x := ev.builtins.Lookup(name); x != nil {
		return x
	}
	*ev.builtins = *NewAttrs(append(append([]Attr(nil), ev.builtins.All()...), Attr{Name: name}))
	return ev.builtins.Lookup(name)
}

func (ev *Evaluator) nixPathValue() Value {
	var items []Value
	for _, e := range ev.opts.NixPath {
		prefix, p := "", e
		if i := strings.IndexByte(e, '='); i >= 0 {
			prefix, p = e[:i], e[i+1:]
		}
		items = append(items, NewAttrs([]Attr{{Name: "path", Val: Str(p)}, {Name: "prefix", Val: Str(prefix)}}))
	}
	return &List{Items: items}
}

// str forces a string value and returns its bytes (context ignored).
func (ev *Evaluator) str(v Value) string { return ev.ForceString(v).S }

func (ev *Evaluator) intArg(v Value) int64 { return ev.ForceInt(v) }

func (ev *Evaluator) floatArg(v Value) (float64, bool) {
	switch x := ev.Force(v).(type) {
	case Int:
		return float64(x), true
	case Float:
		return float64(x), false
	default:
		ev.Throwf("value is %s while a float was expected", showType(x))
	}
	return 0, false
}

func registerCore(reg func(string, int, PrimOpFn)) {
	reg("abort", 1, func(ev *Evaluator, a []Value) Value {
		s := ev.CoerceToStringMore(a[0], false)
		ev.ThrowKind(ErrAbort, "evaluation aborted with the following error message: '%s'", s.S)
		return nil
	})
	reg("throw", 1, func(ev *Evaluator, a []Value) Value {
		s := ev.CoerceToStringMore(a[0], false)
		ev.ThrowKind(ErrThrow, "%s", s.S)
		return nil
	})
	reg("addErrorContext", 2, func(ev *Evaluator, a []Value) Value {
		m := ev.mark()
		defer func() {
			if r := recover(); r != nil {
				if e, ok := r.(*Error); ok {
					ev.addErrorContext(e, m, a[0])
				}
				panic(r)
			}
		}()
		return ev.Force(a[1])
	})
	reg("tryEval", 1, func(ev *Evaluator, a []Value) Value {
		v, ok := ev.tryEval(a[0])
		if !ok {
			return NewAttrs([]Attr{{Name: "success", Val: Bool(false)}, {Name: "value", Val: Bool(false)}})
		}
		return NewAttrs([]Attr{{Name: "success", Val: Bool(true)}, {Name: "value", Val: v}})
	})
	reg("seq", 2, func(ev *Evaluator, a []Value) Value { ev.Force(a[0]); return a[1] })
	reg("deepSeq", 2, func(ev *Evaluator, a []Value) Value { ev.ForceDeep(a[0]); return a[1] })
	reg("trace", 2, func(ev *Evaluator, a []Value) Value {
		v := ev.Force(a[0])
		var msg string
		if s, ok := v.(*String); ok {
			msg = s.S
		} else {
			msg = PrintValue(ev, v, false)
		}
		if ev.opts.Trace != nil {
			ev.opts.Trace(msg)
		} else {
			fmt.Fprintf(os.Stderr, "trace: %s\n", msg)
		}
		return a[1]
	})
	reg("import", 1, func(ev *Evaluator, a []Value) Value {
		return ev.importPath(ev.coerceToPath(a[0]), ev.curPos)
	})
	reg("scopedImport", 2, func(ev *Evaluator, a []Value) Value {
		scope := ev.forceAttrs(a[0])
		p := ev.resolveImport(ev.coerceToPath(a[1]))
		text, err := ev.opts.IO.ReadFile(p)
		if err != nil {
			ev.Throwf("getting status of '%s': %s", p, ioErrText(err))
		}
		return ev.evalSource(newSource(p, string(text)), filepath.Dir(p), scope)
	})
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

	// arithmetic
	reg("add", 2, func(ev *Evaluator, a []Value) Value { return ev.addNum(a[0], a[1]) })
	reg("sub", 2, func(ev *Evaluator, a []Value) Value { return ev.arith('-', a[0], a[1], ev.curPos) })
	reg("mul", 2, func(ev *Evaluator, a []Value) Value { return ev.arith('*', a[0], a[1], ev.curPos) })
	reg("div", 2, func(ev *Evaluator, a []Value) Value { return ev.arith('/', a[0], a[1], ev.curPos) })
	reg("lessThan", 2, func(ev *Evaluator, a []Value) Value { return Bool(ev.lessThan(a[0], a[1], ev.curPos)) })
	reg("bitAnd", 2, func(ev *Evaluator, a []Value) Value { return Int(ev.intArg(a[0]) & ev.intArg(a[1])) })
	reg("bitOr", 2, func(ev *Evaluator, a []Value) Value { return Int(ev.intArg(a[0]) | ev.intArg(a[1])) })
	reg("bitXor", 2, func(ev *Evaluator, a []Value) Value { return Int(ev.intArg(a[0]) ^ ev.intArg(a[1])) })
	reg("floor", 1, func(ev *Evaluator, a []Value) Value {
		f, isInt := ev.floatArg(a[0])
		if isInt {
			return Int(int64(f))
		}
		return Int(int64(math.Floor(f)))
	})
	reg("ceil", 1, func(ev *Evaluator, a []Value) Value {
		f, isInt := ev.floatArg(a[0])
		if isInt {
			return Int(int64(f))
		}
		return Int(int64(math.Ceil(f)))
	})

	// attrsets
	reg("attrNames", 1, func(ev *Evaluator, a []Value) Value {
		as := ev.forceAttrs(a[0])
		out := make([]Value, as.Len())
		strs := make([]String, len(out))
		for i, x := range as.All() {
			strs[i].S = x.Name
			out[i] = &strs[i]
		}
		return &List{Items: out}
	})
	reg("attrValues", 1, func(ev *Evaluator, a []Value) Value {
		as := ev.forceAttrs(a[0])
		out := make([]Value, as.Len())
		for i, x := range as.All() {
			out[i] = x.Val
		}
		return &List{Items: out}
	})
	reg("getAttr", 2, func(ev *Evaluator, a []Value) Value {
		name := ev.str(a[0])
		x := ev.forceAttrs(a[1]).Lookup(name)
		if x == nil {
			ev.missingGetAttr(name)
		}
		return x.Val
	})
	reg("hasAttr", 2, func(ev *Evaluator, a []Value) Value {
		name := ev.str(a[0])
		_, ok := ev.forceAttrs(a[1]).Get(name)
		return Bool(ok)
	})
	reg("unsafeGetAttrPos", 2, func(ev *Evaluator, a []Value) Value {
		name := ev.str(a[0])
		as := ev.forceAttrs(a[1])
		x := as.Lookup(name)
		if x == nil || x.Pos == nil {
			return Null{}
		}
		return posAttrs(*x.Pos)
	})
	reg("removeAttrs", 2, func(ev *Evaluator, a []Value) Value {
		as := ev.forceAttrs(a[0])
		names := ev.ForceList(a[1])
		drop := map[string]bool{}
		for _, n := range names.Items {
			drop[ev.str(n)] = true
		}
		out := make([]Attr, 0, as.Len())
		for _, x := range as.All() {
			if !drop[x.Name] {
				out = append(out, x)
			}
		}
		return mkAttrs(out)
	})
	reg("intersectAttrs", 2, func(ev *Evaluator, a []Value) Value {
		x := ev.forceAttrs(a[0])
		y := ev.forceAttrs(a[1])
		var out []Attr
		for _, b := range y.All() {
			if x.Lookup(b.Name) != nil {
				out = append(out, b)
			}
		}
		return mkAttrs(out)
	})
	reg("catAttrs", 2, func(ev *Evaluator, a []Value) Value {
		name := ev.str(a[0])
		l := ev.ForceList(a[1])
		var out []Value
		for _, it := range l.Items {
			if v, ok := ev.forceAttrs(it).Get(name); ok {
				out = append(out, v)
			}
		}
		return &List{Items: out}
	})
	reg("listToAttrs", 1, func(ev *Evaluator, a []Value) Value {
		l := ev.ForceList(a[0])
		as := make([]Attr, 0, len(l.Items))
		for _, it := range l.Items {
			x := ev.forceAttrs(it)
			nv, ok := x.Get("name")
			if !ok {
				ev.Throwf("attribute 'name' missing for call to 'listToAttrs'")
			}
			name := ev.str(nv)
			vv, ok := x.Get("value")
			if !ok {
				ev.Throwf("attribute 'value' missing for call to 'listToAttrs'")
			}
			as = append(as, Attr{Name: name, Val: vv, Pos: x.Lookup("value").Pos})
		}
		// the first occurrence of a name wins
		sortAttrs(as)
		out := as[:0]
		for _, x := range as {
			if len(out) > 0 && out[len(out)-1].Name == x.Name {
				continue
			}
			out = append(out, x)
		}
		return mkAttrs(out)
	})
	reg("mapAttrs", 2, func(ev *Evaluator, a []Value) Value {
		f := a[0]
		as := ev.forceAttrs(a[1])
		all := as.All()
		out := make([]Attr, len(all))
		names := make([]String, len(all))
		slab := newApplySlab(len(all), 2)
		// Nix 2.8 keeps no positions here: unsafeGetAttrPos of a mapped
		// attribute is null (nixpkgs' declaration-positions test relies on it).
		for i, x := range all {
			names[i].S = x.Name
			out[i] = Attr{Name: x.Name, Val: slab.apply2(i, f, &names[i], x.Val)}
		}
		return mkAttrs(out)
	})
	reg("zipAttrsWith", 2, func(ev *Evaluator, a []Value) Value {
		f := a[0]
		l := ev.ForceList(a[1])
		sets := make([][]Attr, 0, len(l.Items))
		total := 0
		for _, it := range l.Items {
			if as := ev.forceAttrs(it).All(); len(as) > 0 {
				sets = append(sets, as)
				total += len(as)
			}
		}
		if len(sets) > 16 {
			m := map[string][]Value{}
			for _, as := range sets {
				for _, x := range as {
					m[x.Name] = append(m[x.Name], x.Val)
				}
			}
			out := make([]Attr, 0, len(m))
			for k, vs := range m {
				out = append(out, Attr{Name: k, Val: apply2Thunk(f, Str(k), &List{Items: vs})})
			}
			return NewAttrs(out)
		}
		// few sets: merge them (each is sorted), so names come out sorted
		// and the values of a name in list order; a first pass counts the
		// names so that everything fits in a few exact slabs
		pos := make([]int, len(sets))
		next := func() (string, bool) {
			var name string
			found := false
			for i, as := range sets {
				if pos[i] < len(as) && (!found || as[pos[i]].Name < name) {
					name, found = as[pos[i]].Name, true
				}
			}
			return name, found
		}
		n := 0
		for name, ok := next(); ok; name, ok = next() {
			for i, as := range sets {
				if pos[i] < len(as) && as[pos[i]].Name == name {
					pos[i]++
				}
			}
			n++
		}
		clear(pos)
		vals := make([]Value, 0, total)
		lists := make([]List, n)
		names := make([]String, n)
		out := make([]Attr, n)
		slab := newApplySlab(n, 2)
		for j := range n {
			name, _ := next()
			start := len(vals)
			for i, as := range sets {
				if pos[i] < len(as) && as[pos[i]].Name == name {
					vals = append(vals, as[pos[i]].Val)
					pos[i]++
				}
			}
			lists[j].Items = vals[start:len(vals):len(vals)]
			names[j].S = name
			out[j] = Attr{Name: name, Val: slab.apply2(j, f, &names[j], &lists[j])}
		}
		return mkAttrs(out)
	})
	reg("functionArgs", 1, func(ev *Evaluator, a []Value) Value {
		switch f := ev.Force(a[0]).(type) {
		case *Lambda:
			if f.fn.simple {
				return emptyAttrs
			}
			out := make([]Attr, len(f.fn.formals))
			for i, fm := range f.fn.formals {
				out[i] = Attr{Name: fm.name, Val: Bool(fm.def != nil), Pos: &f.fn.formals[i].pos}
			}
			return mkAttrs(out)
		case *PrimOp, *PrimOpApp:
			return emptyAttrs
		default:
			ev.Throwf("'functionArgs' requires a function")
		}
		return nil
	})
	reg("genericClosure", 1, func(ev *Evaluator, a []Value) Value { return ev.genericClosure(a[0]) })

	// lists
	reg("length", 1, func(ev *Evaluator, a []Value) Value { return Int(len(ev.ForceList(a[0]).Items)) })
	reg("head", 1, func(ev *Evaluator, a []Value) Value {
		l := ev.ForceList(a[0])
		if len(l.Items) == 0 {
			ev.Throwf("list index 0 is out of bounds")
		}
		return l.Items[0]
	})
	reg("tail", 1, func(ev *Evaluator, a []Value) Value {
		l := ev.ForceList(a[0])
		if len(l.Items) == 0 {
			ev.Throwf("'tail' called on an empty list")
		}
		return &List{Items: l.Items[1:]}
	})
	reg("elemAt", 2, func(ev *Evaluator, a []Value) Value {
		l := ev.ForceList(a[0])
		i := ev.intArg(a[1])
		if i < 0 || i >= int64(len(l.Items)) {
			ev.Throwf("list index %d is out of bounds", i)
		}
		return l.Items[i]
	})
	reg("elem", 2, func(ev *Evaluator, a []Value) Value {
		for _, it := range ev.ForceList(a[1]).Items {
			if ev.Equal(a[0], it, ev.curPos) {
				return Bool(true)
			}
		}
		return Bool(false)
	})
	reg("map", 2, func(ev *Evaluator, a []Value) Value {
		f := a[0]
		l := ev.ForceList(a[1])
		out := make([]Value, len(l.Items))
		slab := newApplySlab(len(out), 1)
		for i, it := range l.Items {
			out[i] = slab.apply1(i, f, it)
		}
		return &List{Items: out}
	})
	reg("filter", 2, func(ev *Evaluator, a []Value) Value {
		f := ev.forceFunction(a[0])
		l := ev.ForceList(a[1])
		var out []Value
		same := true
		for i := range l.Items {
			it := l.Items[i]
			keep := ev.forceBool(ev.call(f, it, ev.curPos), ev.curPos)
			if t, ok := it.(*Thunk); ok && t.done() {
				it = t.v // evaluated by the predicate: drop the indirection
				l.Items[i] = it
			}
			if keep {
				out = append(out, it)
			} else {
				same = false
			}
		}
		if same {
			return l
		}
		return &List{Items: out}
	})
	reg("foldl'", 3, func(ev *Evaluator, a []Value) Value {
		f := ev.forceFunction(a[0])
		acc := a[1]
		l := ev.ForceList(a[2])
		for _, it := range l.Items {
			acc = ev.Force(ev.call2(f, acc, it, ev.curPos))
		}
		return acc
	})
	reg("genList", 2, func(ev *Evaluator, a []Value) Value {
		f := a[0]
		n := ev.intArg(a[1])
		if n < 0 {
			ev.Throwf("cannot create list of size %d", n)
		}
		out := make([]Value, n)
		slab := newApplySlab(len(out), 1)
		for i := range out {
			out[i] = slab.apply1(i, f, Int(i))
		}
		return &List{Items: out}
	})
	reg("concatLists", 1, func(ev *Evaluator, a []Value) Value {
		l := ev.ForceList(a[0])
		var out []Value
		for _, it := range l.Items {
			out = append(out, ev.ForceList(it).Items...)
		}
		return &List{Items: out}
	})
	reg("concatMap", 2, func(ev *Evaluator, a []Value) Value {
		f := ev.forceFunction(a[0])
		l := ev.ForceList(a[1])
		var out []Value
		for _, it := range l.Items {
			out = append(out, ev.ForceList(ev.call(f, it, ev.curPos)).Items...)
		}
		return &List{Items: out}
	})
	anyAll := func(name string, want bool) {
		reg(name, 2, func(ev *Evaluator, a []Value) Value {
			f := ev.forceFunction(a[0])
			for _, it := range ev.ForceList(a[1]).Items {
				if ev.forceBool(ev.call(f, it, ev.curPos), ev.curPos) == want {
					return Bool(want)
				}
			}
			return Bool(!want)
		})
	}
	anyAll("any", true)
	anyAll("all", false)
	reg("partition", 2, func(ev *Evaluator, a []Value) Value {
		f := ev.forceFunction(a[0])
		var r, w []Value
		for _, it := range ev.ForceList(a[1]).Items {
			if ev.forceBool(ev.call(f, it, ev.curPos), ev.curPos) {
				r = append(r, it)
			} else {
				w = append(w, it)
			}
		}
		return NewAttrs([]Attr{{Name: "right", Val: &List{Items: r}}, {Name: "wrong", Val: &List{Items: w}}})
	})
	reg("groupBy", 2, func(ev *Evaluator, a []Value) Value {
		f := ev.forceFunction(a[0])
		m := map[string][]Value{}
		for _, it := range ev.ForceList(a[1]).Items {
			k := ev.str(ev.call(f, it, ev.curPos))
			m[k] = append(m[k], it)
		}
		out := make([]Attr, 0, len(m))
		for k, vs := range m {
			out = append(out, Attr{Name: k, Val: &List{Items: vs}})
		}
		return NewAttrs(out)
	})
	reg("sort", 2, func(ev *Evaluator, a []Value) Value {
		f := ev.forceFunction(a[0])
		l := ev.ForceList(a[1])
		out := make([]Value, len(l.Items))
		for i := range l.Items {
			out[i] = ev.forceItem(l, i)
		}
		mergeSort(out, func(a, b Value) bool {
			return ev.forceBool(ev.call2(f, a, b, ev.curPos), ev.curPos)
		})
		return &List{Items: out}
	})

	// paths and files
	reg("baseNameOf", 1, func(ev *Evaluator, a []Value) Value {
		s := ev.coerceToString(a[0], ev.curPos, false, false)
		return StrCtx(baseNameOf(s.S), s.Ctx())
	})
	reg("dirOf", 1, func(ev *Evaluator, a []Value) Value {
		v := ev.Force(a[0])
		if p, ok := v.(Path); ok {
			return Path(dirOf(string(p)))
		}
		s := ev.coerceToString(v, ev.curPos, false, false)
		return StrCtx(dirOf(s.S), s.Ctx())
	})
	reg("toPath", 1, func(ev *Evaluator, a []Value) Value { return Str(ev.coerceToPath(a[0])) })
	reg("pathExists", 1, func(ev *Evaluator, a []Value) Value {
		raw := ev.coerceToString(a[0], ev.curPos, false, false).S
		p := ev.coerceToPath(a[0])
		ok, err := ev.opts.IO.PathExists(p)
		if err != nil {
			ev.Throwf("checking whether '%s' exists: %v", p, err)
		}
		if ok && (strings.HasSuffix(raw, "/") || strings.HasSuffix(raw, "/.")) {
			// a trailing slash asks for a directory
			ft, err := ev.opts.IO.FileType(p)
			if err == nil && ft == FileSymlink {
				if r, err := filepath.EvalSymlinks(p); err == nil {
					ft, err = ev.opts.IO.FileType(r)
				}
			}
			return Bool(err == nil && ft == FileDirectory)
		}
		return Bool(ok)
	})
	reg("readFile", 1, func(ev *Evaluator, a []Value) Value {
		p := ev.coerceToPath(a[0])
		b, err := ev.opts.IO.ReadFile(p)
		if err != nil {
			ev.Throwf("opening file '%s': %s", p, ioErrText(err))
		}
		return Str(string(b))
	})
	reg("readDir", 1, func(ev *Evaluator, a []Value) Value {
		p := ev.coerceToPath(a[0])
		es, err := ev.opts.IO.ReadDir(p)
		if err != nil {
			ev.Throwf("opening directory '%s': %s", p, ioErrText(err))
		}
		out := make([]Attr, len(es))
		for i, e := range es {
			t := e.Type
			if t == FileUnknown {
				if ft, err := ev.opts.IO.FileType(p + "/" + e.Name); err == nil {
					t = ft
				}
			}
			out[i] = Attr{Name: e.Name, Val: Str(t.String())}
		}
		return NewAttrs(out)
	})
	reg("readFileType", 1, func(ev *Evaluator, a []Value) Value {
		p := ev.coerceToPath(a[0])
		t, err := ev.opts.IO.FileType(p)
		if err != nil {
			ev.Throwf("getting status of '%s': %s", p, ioErrText(err))
		}
		return Str(t.String())
	})
	reg("getEnv", 1, func(ev *Evaluator, a []Value) Value { return Str(ev.getenv(ev.str(a[0]))) })
	reg("findFile", 2, func(ev *Evaluator, a []Value) Value {
		l := ev.ForceList(a[0])
		name := ev.str(a[1])
		for _, it := range l.Items {
			as := ev.forceAttrs(it)
			pv, ok := as.Get("path")
			if !ok {
				ev.Throwf("attribute 'path' missing")
			}
			prefix := ""
			if x, ok := as.Get("prefix"); ok {
				prefix = ev.str(x)
			}
			base := ev.coerceToString(pv, ev.curPos, false, false).S
			if strings.Contains(base, "://") {
				continue
			}
			var cand string
			switch {
			case prefix == "":
				cand = base + "/" + name
			case name == prefix:
				cand = base
			case strings.HasPrefix(name, prefix+"/"):
				cand = base + name[len(prefix):]
			default:
				continue
			}
			if !filepath.IsAbs(cand) {
				if abs, err := filepath.Abs(cand); err == nil {
					cand = abs
				}
			}
			if ok, _ := ev.opts.IO.PathExists(cand); ok {
				return Path(canonPath(cand))
			}
		}
		if rest, ok := strings.CutPrefix(name, "nix/"); ok {
			if _, ok := corepkgs[rest]; ok {
				return Path(corepkgsPrefix + rest)
			}
		}
		ev.ThrowKind(ErrThrow, "file '%s' was not found in the Nix search path (add it using $NIX_PATH or -I)", name)
		return nil
	})
	reg("placeholder", 1, func(ev *Evaluator, a []Value) Value {
		return Str("/" + nixBase32(sha256Sum([]byte("nix-output:"+ev.str(a[0])))))
	})
}

func baseNameOf(p string) string {
	if p == "" {
		return ""
	}
	last := len(p) - 1
	if p[last] == '/' && last > 0 {
		last--
	}
	pos := strings.LastIndexByte(p[:last+1], '/')
	return p[pos+1 : last+1]
}

func dirOf(p string) string {
	pos := strings.LastIndexByte(p, '/')
	if pos < 0 {
		return "."
	}
	if pos == 0 {
		return "/"
	}
	return p[:pos]
}

// tryEval forces v, catching throw and assert failures.
func (ev *Evaluator) tryEval(v Value) (res Value, ok bool) {
	m := ev.mark()
	defer func() {
		if r := recover(); r != nil {
			if e, isErr := r.(*Error); isErr && e.Catchable() {
				ev.unwindTo(m)
				res, ok = nil, false
				return
			}
			panic(r)
		}
	}()
	return ev.Force(v), true
}

func (ev *Evaluator) genericClosure(arg Value) Value {
	as := ev.forceAttrs(arg)
	ss, ok := as.Get("startSet")
	if !ok {
		ev.Throwf("attribute 'startSet' missing for call to 'genericClosure'")
	}
	op, ok := as.Get("operator")
	if !ok {
		ev.Throwf("attribute 'operator' missing for call to 'genericClosure'")
	}
	work := append([]Value(nil), ev.ForceList(ss).Items...)
	op = ev.Force(op)
	var keys []Value // sorted
	var out []Value
	for len(work) > 0 {
		e := work[0]
		work = work[1:]
		ea := ev.forceAttrs(e)
		k, ok := ea.Get("key")
		if !ok {
			ev.Throwf("attribute 'key' required")
		}
		k = ev.Force(k)
		i := sort.Search(len(keys), func(i int) bool { return ev.compare(k, keys[i], ev.curPos) <= 0 })
		if i < len(keys) && ev.compare(k, keys[i], ev.curPos) == 0 {
			continue
		}
		keys = append(keys, nil)
		copy(keys[i+1:], keys[i:])
		keys[i] = k
		out = append(out, e)
		work = append(work, ev.ForceList(ev.call(op, e, ev.curPos)).Items...)
	}
	return &List{Items: out}
}

// mergeSort is a stable sort making about n log n comparisons, as
// std::stable_sort does (sort.SliceStable makes many more swaps).
func mergeSort(xs []Value, less func(a, b Value) bool) {
	if len(xs) < 2 {
		return
	}
	buf := make([]Value, len(xs))
	var rec func(xs, buf []Value)
	rec = func(xs, buf []Value) {
		n := len(xs)
		if n <= 12 {
			for i := 1; i < n; i++ {
				for j := i; j > 0 && less(xs[j], xs[j-1]); j-- {
					xs[j], xs[j-1] = xs[j-1], xs[j]
				}
			}
			return
		}
		m := n / 2
		rec(xs[:m], buf[:m])
		rec(xs[m:], buf[m:])
		if !less(xs[m], xs[m-1]) {
			return // already in order
		}
		copy(buf, xs)
		i, j, k := 0, m, 0
		for i < m && j < n {
			if less(buf[j], buf[i]) {
				xs[k] = buf[j]
				j++
			} else {
				xs[k] = buf[i]
				i++
			}
			k++
		}
		for i < m {
			xs[k] = buf[i]
			i++
			k++
		}
		for j < n {
			xs[k] = buf[j]
			j++
			k++
		}
	}
	rec(xs, buf)
}

// missingGetAttr is getAttr's error, out of line: derivation.nix's
// outPath is a getAttr, on the recursion path of chained derivations.
//
//go:noinline
func (ev *Evaluator) missingGetAttr(name string) {
	ev.Throwf("attribute '%s' missing for call to 'getAttr'", name)
}
