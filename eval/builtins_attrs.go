package eval

import "slices"

// registerAttrs adds the attribute set builtins.
func registerAttrs(reg registerFunc) {
	reg("attrNames", 1, func(ev *Evaluator, a []Value) Value {
		as := ev.forceAttrs(a[0])
		out := make([]Value, as.Len())
		prefault(out)
		strs := make([]String, len(out))
		for i, x := range as.All() {
			strs[i].S = x.Name()
			out[i] = &strs[i]
		}
		return &List{Items: out}
	})
	reg("attrValues", 1, func(ev *Evaluator, a []Value) Value {
		as := ev.forceAttrs(a[0])
		out := make([]Value, as.Len())
		prefault(out)
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
	reg("removeAttrs", 2, func(ev *Evaluator, a []Value) Value {
		as := ev.forceAttrs(a[0])
		names := ev.ForceList(a[1])
		// a few names (the usual case: removeAttrs args [ "override" ])
		// are searched in a small array, not a map made per call
		var few [8]string
		drops := few[:0]
		var drop map[string]bool
		for _, n := range names.Items {
			s := ev.str(n)
			if drop == nil && len(drops) < len(few) {
				drops = append(drops, s)
				continue
			}
			if drop == nil {
				drop = make(map[string]bool, len(names.Items))
				for _, d := range drops {
					drop[d] = true
				}
			}
			drop[s] = true
		}
		dropped := func(name string) bool {
			if drop != nil {
				return drop[name]
			}
			return slices.Contains(drops, name)
		}
		var small [16]Attr
		out := small[:0]
		if as.Len() > len(small) {
			out = make([]Attr, 0, as.Len())
		}
		for _, x := range as.All() {
			if !dropped(x.Name()) {
				out = append(out, x)
			}
		}
		if len(out) == as.Len() {
			return as
		}
		return attrsCopy(out)
	})
	reg("intersectAttrs", 2, func(ev *Evaluator, a []Value) Value {
		x := ev.forceAttrs(a[0])
		y := ev.forceAttrs(a[1])
		// gathered on the stack, then one allocation of the result's size
		var small [16]Attr
		out := small[:0]
		if x.Len() < y.Len() {
			// callPackage: a function's few arguments against the whole
			// package set, once per package; walking the set each time
			// was quadratic in its size
			for _, b := range x.All() {
				if at := y.Lookup(b.Name()); at != nil {
					out = append(out, *at)
				}
			}
			return attrsCopy(out)
		}
		for _, b := range y.All() {
			if x.Lookup(b.Name()) != nil {
				out = append(out, b)
			}
		}
		return attrsCopy(out)
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
		prefault(as)
		keys := make([]attrKey, len(l.Items))
		for i, it := range l.Items {
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
			keys[i] = attrKey{name: name, pre: keyPre(name), pos: x.Lookup("value").Pos()}
			as = append(as, Attr{key: &keys[i], Val: vv})
		}
		// the first occurrence of a name wins
		sortAttrs(as)
		out := as[:0]
		for _, x := range as {
			if len(out) > 0 && sameName(out[len(out)-1].key, x.key) {
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
		prefault(out)
		ts := sharedApply(len(all), f, applyAttrCode)
		// Nix 2.8 keeps no positions here: unsafeGetAttrPos of a mapped
		// attribute is null (nixpkgs' declaration-positions test relies on it).
		// (all is the set's own sorted array, never changed: the thunks
		// may point into it.)
		inChunks(len(all), func(lo, hi int) {
			for i := lo; i < hi; i++ {
				ts[i].v = &all[i]
				out[i] = Attr{key: all[i].key.noPos(), Val: &ts[i]}
			}
		})
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
					m[x.Name()] = append(m[x.Name()], x.Val)
				}
			}
			out := make([]Attr, 0, len(m))
			for k, vs := range m {
				out = append(out, MkAttr(k, apply2Thunk(f, Str(k), &List{Items: vs})))
			}
			return NewAttrs(out)
		}
		// few sets: merge them (each is sorted), so names come out sorted
		// and the values of a name in list order; a first pass counts the
		// names so that everything fits in a few exact slabs
		// (on the stack: at most 16 sets come here)
		var posBuf [16]int
		pos := posBuf[:len(sets)]
		next := func() (string, bool) {
			var name string
			found := false
			for i, as := range sets {
				if pos[i] < len(as) && (!found || as[pos[i]].Name() < name) {
					name, found = as[pos[i]].Name(), true
				}
			}
			return name, found
		}
		n := 0
		for name, ok := next(); ok; name, ok = next() {
			for i, as := range sets {
				if pos[i] < len(as) && as[pos[i]].Name() == name {
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
		slab := newApplySlab(n)
		for j := range n {
			name, _ := next()
			start := len(vals)
			for i, as := range sets {
				if pos[i] < len(as) && as[pos[i]].Name() == name {
					vals = append(vals, as[pos[i]].Val)
					pos[i]++
				}
			}
			lists[j].Items = vals[start:len(vals):len(vals)]
			names[j].S = name
			out[j] = MkAttr(name, slab.apply2(j, f, &names[j], &lists[j]))
		}
		return mkAttrs(out)
	})
}

// missingGetAttr is getAttr's error, out of line: derivation.nix's
// outPath is a getAttr, on the recursion path of chained derivations.
//
//go:noinline
func (ev *Evaluator) missingGetAttr(name string) {
	ev.Throwf("attribute '%s' missing for call to 'getAttr'", name)
}
