package eval

import (
	"slices"
	"sort"
)

// registerLists adds the list builtins.
func registerLists(reg registerFunc) {
	reg("genericClosure", 1, func(ev *Evaluator, a []Value) Value { return ev.genericClosure(a[0]) })
	reg("length", 1, func(ev *Evaluator, a []Value) Value { return ev.boxInt(Int(len(ev.ForceList(a[0]).Items))) })
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
		items := ev.ForceList(a[1]).Items
		if len(items) == 0 {
			return Bool(false) // the value is not forced (Nix's elem (throw "…") [])
		}
		if s, ok := ev.Force(a[0]).(*String); ok {
			// the common case (a name in a list of names) without Equal's
			// dispatch per item: a string equals strings only, and
			// equalElem's one-cell rule gives nothing more for them
			for _, it := range items {
				if y, ok := ev.Force(it).(*String); ok && y.S == s.S {
					return Bool(true)
				}
			}
			return Bool(false)
		}
		for _, it := range items {
			if ev.equalElem(a[0], it, ev.curPos) {
				return Bool(true)
			}
		}
		return Bool(false)
	})
	reg("map", 2, func(ev *Evaluator, a []Value) Value {
		f := a[0]
		l := ev.ForceList(a[1])
		out := make([]Value, len(l.Items))
		prefault(out)
		ts := sharedApply(len(out), f, applyArgCode)
		inChunks(len(out), func(lo, hi int) {
			for i := lo; i < hi; i++ {
				ts[i].v = l.Items[i]
				out[i] = &ts[i]
			}
		})
		return &List{Items: out}
	})
	reg("filter", 2, func(ev *Evaluator, a []Value) Value {
		f := ev.forceFunction(a[0])
		l := ev.ForceList(a[1])
		// which to keep first, then the result in one allocation of its
		// size (appending left up to as much again as garbage)
		var small [64]bool
		keep := small[:0]
		if len(l.Items) > len(small) {
			keep = make([]bool, 0, len(l.Items))
		}
		n := 0
		for i := range l.Items {
			it := l.Items[i]
			k := ev.forceBool(ev.call(f, it, ev.curPos), ev.curPos)
			if t, ok := it.(*Thunk); ok && t.done() && !isFunction(t.v) {
				l.Items[i] = t.v // evaluated by the predicate: drop the indirection
			}
			keep = append(keep, k)
			if k {
				n++
			}
		}
		if n == len(l.Items) {
			return l
		}
		out := make([]Value, 0, n)
		prefault(out)
		for i, k := range keep {
			if k {
				out = append(out, l.Items[i])
			}
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
		prefault(out)
		ts := genListThunks(len(out), f)
		inChunks(len(out), func(lo, hi int) {
			for i := lo; i < hi; i++ {
				out[i] = &ts[i]
			}
		})
		return &List{Items: out}
	})
	reg("concatLists", 1, func(ev *Evaluator, a []Value) Value {
		// sized once: growing by append copied the pointer-rich result
		// (write barriers while a cycle runs) log n times
		l := ev.ForceList(a[0])
		n := 0
		for i := range l.Items {
			n += len(ev.ForceList(ev.forceItem(l, i)).Items)
		}
		out := make([]Value, 0, n)
		prefault(out)
		for _, it := range l.Items {
			out = appendItems(out, it.(*List).Items)
		}
		return &List{Items: out}
	})
	reg("concatMap", 2, func(ev *Evaluator, a []Value) Value {
		f := ev.forceFunction(a[0])
		l := ev.ForceList(a[1])
		// the parts wait on the evaluator's stack (f may call concatMap
		// too), not in a slice of their own per call
		start := len(ev.listParts)
		ev.listParts = slices.Grow(ev.listParts, len(l.Items))
		n := 0
		for _, it := range l.Items {
			p := ev.ForceList(ev.call(f, it, ev.curPos))
			ev.listParts = append(ev.listParts, p)
			n += len(p.Items)
		}
		parts := ev.listParts[start:]
		out := make([]Value, 0, n)
		prefault(out)
		for _, p := range parts {
			out = appendItems(out, p.Items)
		}
		clear(parts)
		ev.listParts = ev.listParts[:start]
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
		l := ev.ForceList(a[1])
		right := make([]bool, len(l.Items))
		nr := 0
		for i, it := range l.Items {
			if ev.forceBool(ev.call(f, it, ev.curPos), ev.curPos) {
				right[i] = true
				nr++
			}
		}
		r, w := make([]Value, 0, nr), make([]Value, 0, len(l.Items)-nr)
		prefault(r)
		prefault(w)
		for i, it := range l.Items {
			if right[i] {
				r = append(r, it)
			} else {
				w = append(w, it)
			}
		}
		return NewAttrs([]Attr{{key: keyRight, Val: &List{Items: r}}, {key: keyWrong, Val: &List{Items: w}}})
	})
	reg("groupBy", 2, func(ev *Evaluator, a []Value) Value {
		f := ev.forceFunction(a[0])
		items := ev.ForceList(a[1]).Items
		// each item's group first, then each group in a slice of its
		// size: appending grew and copied each group log n times (one
		// slice for all would keep every item alive for any group kept)
		groups := map[string]int32{}
		var names []string
		var sizes []int
		of := make([]int32, len(items))
		for i, it := range items {
			k := ev.str(ev.call(f, it, ev.curPos))
			g, ok := groups[k]
			if !ok {
				g = int32(len(names))
				groups[k] = g
				names, sizes = append(names, k), append(sizes, 0)
			}
			of[i] = g
			sizes[g]++
		}
		lists := make([]*List, len(names))
		for g, n := range sizes {
			lists[g] = &List{Items: make([]Value, 0, n)}
		}
		for i, it := range items {
			l := lists[of[i]]
			l.Items = append(l.Items, it)
		}
		out := make([]Attr, len(names))
		for g, k := range names {
			out[g] = MkAttr(k, lists[g])
		}
		return NewAttrs(out)
	})
	reg("sort", 2, func(ev *Evaluator, a []Value) Value {
		f := ev.forceFunction(a[0])
		l := ev.ForceList(a[1])
		out := make([]Value, len(l.Items))
		prefault(out)
		for i := range l.Items {
			out[i] = ev.forceItem(l, i)
		}
		less := func(a, b Value) bool {
			return ev.forceBool(ev.call2(f, a, b, ev.curPos), ev.curPos)
		}
		if op, ok := f.(*PrimOp); ok && op == ev.lessThanOp {
			// as Nix 2.8 does: compared without a call per comparison
			pos := ev.curPos
			less = func(a, b Value) bool { return ev.lessThan(a, b, pos) }
		}
		mergeSort(out, less)
		return &List{Items: out}
	})
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
	var work valueQueue
	for _, e := range ev.ForceList(ss).Items {
		work.push(e)
	}
	op = ev.Force(op)
	var done closureKeys
	var out valueChunks
	for !work.empty() {
		e := work.pop()
		ea := ev.forceAttrs(e)
		k, ok := ea.Get("key")
		if !ok {
			ev.Throwf("attribute 'key' required")
		}
		if !done.insert(ev, ev.Force(k)) {
			continue
		}
		out.add(e)
		for _, next := range ev.ForceList(ev.call(op, e, ev.curPos)).Items {
			work.push(next)
		}
	}
	return &List{Items: out.list()}
}

// mergeSort is a stable sort making about n log n comparisons, as
// std::stable_sort does (sort.SliceStable makes many more swaps).
func mergeSort(xs []Value, less func(a, b Value) bool) {
	if len(xs) < 2 {
		return
	}
	buf := make([]Value, len(xs))
	prefault(buf)
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
		copyItems(buf, xs)
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

// closureKeys is genericClosure's set of keys seen, ordered as compare
// orders them (C++ Nix keeps a std::set). Numbers, strings and paths,
// nearly every key in practice, go into hash sets: keeping one sorted
// slice made the closure quadratic (inserting shifts half the slice).
// Other keys (lists) stay in a sorted slice searched with compare.
type closureKeys struct {
	first Value              // the first key, to fail as compare does on keys of different types
	ints  map[int64]struct{} // integers outside [0, denseKeys)
	dense []uint64           // a bit per integer in [0, denseKeys), grown as keys come
	flts  map[Float]struct{}
	strs  map[string]struct{}
	paths map[string]struct{}
	other []Value // sorted by compare
}

// maxExactInt is where float64 stops holding every integer: an integral
// float below it equals exactly one Int, above it compare's rounding
// decides, so such floats are ordered with the other keys.
const maxExactInt = 1 << 53

// denseKeys bounds the integers genericClosure keeps in a bit set (at
// most 512 KB of it): keys are node numbers, mostly, and a map of
// hundreds of thousands of them spent a fifth of the closure's time in
// its lookups, each a cache miss.
const denseKeys = 1 << 22

// addInt adds the integer i and tells whether it was new.
func (c *closureKeys) addInt(i int64) bool {
	if i >= 0 && i < denseKeys {
		w := int(i >> 6)
		if w >= len(c.dense) {
			c.dense = slices.Grow(c.dense, max(w+1, 2*len(c.dense))-len(c.dense))
			c.dense = c.dense[:cap(c.dense)]
		}
		bit := uint64(1) << (i & 63)
		if c.dense[w]&bit != 0 {
			return false
		}
		c.dense[w] |= bit
		return true
	}
	if c.ints == nil {
		c.ints = map[int64]struct{}{}
	}
	n := len(c.ints)
	c.ints[i] = struct{}{}
	return len(c.ints) > n
}

// insert adds k (forced) and tells whether it was new.
func (c *closureKeys) insert(ev *Evaluator, k Value) bool {
	if c.first == nil {
		c.first = k
	} else if keyGroup(k) != keyGroup(c.first) {
		ev.compare(k, c.first, ev.curPos) // throws "cannot compare"
	}
	addStr := func(m *map[string]struct{}, s string) bool {
		if *m == nil {
			*m = map[string]struct{}{}
		}
		n := len(*m)
		(*m)[s] = struct{}{}
		return len(*m) > n
	}
	switch x := k.(type) {
	case Int:
		if x > -maxExactInt && x < maxExactInt {
			return c.addInt(int64(x))
		}
	case Float:
		if x > -maxExactInt && x < maxExactInt {
			if x == Float(int64(x)) {
				return c.addInt(int64(x))
			}
			if c.flts == nil {
				c.flts = map[Float]struct{}{}
			}
			if _, ok := c.flts[x]; ok {
				return false
			}
			c.flts[x] = struct{}{}
			return true
		}
	case *String:
		return addStr(&c.strs, x.S)
	case Path:
		return addStr(&c.paths, string(x))
	}
	i := sort.Search(len(c.other), func(i int) bool { return ev.compare(k, c.other[i], ev.curPos) <= 0 })
	if i < len(c.other) && ev.compare(k, c.other[i], ev.curPos) == 0 {
		return false
	}
	c.other = slices.Insert(c.other, i, k)
	return true
}

// keyGroup is the group of values compare can order among themselves.
func keyGroup(v Value) int {
	switch v.(type) {
	case Int, Float:
		return 1
	case *String:
		return 2
	case Path:
		return 3
	case *List:
		return 4
	}
	return 5
}
