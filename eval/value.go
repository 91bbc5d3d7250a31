package eval

import (
	"encoding/binary"
	"slices"
	"sort"
	"strings"
	"unsafe"

	"github.com/tvix-go/tvix/eval/syntax"
)

// Value is any Nix value: Null, Bool, Int, Float, *String, Path, *List,
// *Attrs, *Lambda, *PrimOp, *PrimOpApp or a not yet forced *Thunk.
type Value any

type (
	Null  struct{}
	Bool  bool
	Int   int64
	Float float64
	// Path is an absolute, canonical file system path.
	Path string
)

// String is a Nix string: bytes (not necessarily UTF-8) plus the store
// paths it refers to.
type String struct {
	S   string
	ctx *Context // nil when empty; keeps String at 24 bytes
}

// Ctx returns the string's context (sorted, do not modify).
func (s *String) Ctx() Context {
	if s.ctx == nil {
		return nil
	}
	return *s.ctx
}

// Context is a sorted set of string context elements in Nix's encoding:
// "/nix/store/…" (a plain store path), "!out!/nix/store/….drv" (one output
// of a derivation) and "=/nix/store/….drv" (a derivation with all its
// outputs).
type Context []string

// ContextKind tells the three kinds of context element apart.
type ContextKind int

const (
	CtxPlain ContextKind = iota
	CtxOutput
	CtxAllOutputs
)

// ContextElem is a decoded context element.
type ContextElem struct {
	Kind   ContextKind
	Path   string // store path (the .drv for CtxOutput and CtxAllOutputs)
	Output string // for CtxOutput
}

func ParseContextElem(s string) ContextElem {
	switch {
	case strings.HasPrefix(s, "="):
		return ContextElem{Kind: CtxAllOutputs, Path: s[1:]}
	case strings.HasPrefix(s, "!"):
		rest := s[1:]
		i := strings.IndexByte(rest, '!')
		if i < 0 {
			return ContextElem{Kind: CtxPlain, Path: s}
		}
		return ContextElem{Kind: CtxOutput, Output: rest[:i], Path: rest[i+1:]}
	}
	return ContextElem{Kind: CtxPlain, Path: s}
}

func (c ContextElem) String() string {
	switch c.Kind {
	case CtxAllOutputs:
		return "=" + c.Path
	case CtxOutput:
		return "!" + c.Output + "!" + c.Path
	}
	return c.Path
}

// Elems decodes the context.
func (c Context) Elems() []ContextElem {
	out := make([]ContextElem, len(c))
	for i, s := range c {
		out[i] = ParseContextElem(s)
	}
	return out
}

// MergeContext returns the sorted union of contexts, sharing when it can.
func MergeContext(a, b Context) Context {
	if len(b) == 0 {
		return a
	}
	if len(a) == 0 {
		return b
	}
	out := make(Context, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] < b[j]:
			out = append(out, a[i])
			i++
		case a[i] > b[j]:
			out = append(out, b[j])
			j++
		default:
			out = append(out, a[i])
			i++
			j++
		}
	}
	out = append(out, a[i:]...)
	return append(out, b[j:]...)
}

// NewContext builds a context from elements in any order.
func NewContext(elems ...string) Context {
	if len(elems) == 0 {
		return nil
	}
	c := append(Context(nil), elems...)
	sort.Strings(c)
	out := c[:1]
	for _, e := range c[1:] {
		if e != out[len(out)-1] {
			out = append(out, e)
		}
	}
	return out
}

// Str makes a string value without context.
func Str(s string) *String { return &String{S: s} }

// emptyString is "" without context, shared: strings are never changed
// once made, so results that are empty need not each be a new one.
var emptyString = &String{}

// StrCtx makes a string value with context.
func StrCtx(s string, c Context) *String {
	if len(c) == 0 {
		return &String{S: s}
	}
	// one allocation, not two (the string and its context's slice)
	x := &struct {
		String
		c Context
	}{String{S: s}, c}
	x.ctx = &x.c
	return &x.String
}

type List struct{ Items []Value }

// allocList makes a list of n items in one allocation when small.
func allocList(n int) *List {
	if n > 0 && n < len(listAllocs) {
		return listAllocs[n]()
	}
	items := make([]Value, n)
	prefault(items)
	return &List{Items: items}
}

// allocListIn makes a list of the length of A with its items in the
// same allocation as its header: one allocation instead of two.
func allocListIn[A any]() *List {
	x := new(struct {
		List
		a A
	})
	x.Items = unsafe.Slice((*Value)(unsafe.Pointer(&x.a)), unsafe.Sizeof(x.a)/valueSize)
	return &x.List
}

// listAllocs[n] is allocListIn for n items.
var listAllocs = [...]func() *List{nil,
	allocListIn[[1]Value], allocListIn[[2]Value], allocListIn[[3]Value], allocListIn[[4]Value],
	allocListIn[[5]Value], allocListIn[[6]Value], allocListIn[[7]Value], allocListIn[[8]Value]}

// allocListThunksIn makes a list of the length of A and the thunks of
// its items (T: an array of them) in one allocation, as
// allocAttrsThunksIn does for sets: a list literal's thunks mostly live
// as long as the list.
func allocListThunksIn[A, T any]() (*List, []Thunk) {
	x := new(struct {
		List
		a A
		t T
	})
	x.Items = unsafe.Slice((*Value)(unsafe.Pointer(&x.a)), unsafe.Sizeof(x.a)/valueSize)
	return &x.List, unsafe.Slice((*Thunk)(unsafe.Pointer(&x.t)), unsafe.Sizeof(x.t)/unsafe.Sizeof(Thunk{}))
}

// listThunksAllocs[n][k] is allocListThunksIn for n items and k thunks
// (1 <= k <= n <= 4).
var listThunksAllocs = [5][]func() (*List, []Thunk){
	nil,
	{nil, allocListThunksIn[[1]Value, [1]Thunk]},
	{nil, allocListThunksIn[[2]Value, [1]Thunk], allocListThunksIn[[2]Value, [2]Thunk]},
	{nil, allocListThunksIn[[3]Value, [1]Thunk], allocListThunksIn[[3]Value, [2]Thunk], allocListThunksIn[[3]Value, [3]Thunk]},
	{nil, allocListThunksIn[[4]Value, [1]Thunk], allocListThunksIn[[4]Value, [2]Thunk], allocListThunksIn[[4]Value, [3]Thunk], allocListThunksIn[[4]Value, [4]Thunk]},
}

// allocListThunks makes a list of n items and k thunks, in one
// allocation for small lists.
func allocListThunks(n, k int) (*List, []Thunk) {
	if k == 0 {
		return allocList(n), nil
	}
	if n < len(listThunksAllocs) && k <= n {
		return listThunksAllocs[n][k]()
	}
	return allocList(n), nil
}

// Attr is one attribute. Its name and position are kept out of line
// in a key that every set made by the same definition shares (the
// compiler makes one per static attribute; updates, mapAttrs and the
// like copy it), so that an attribute is 24 bytes, not 40: sets are the
// bulk of a module-system evaluation's heap, and the collector's
// marking of that mostly live heap is most of the time left over.
type Attr struct {
	key *attrKey
	Val Value
}

type attrKey struct {
	name string
	// pre is the name's first 8 bytes (keyPre): most comparisons of two
	// names are decided by it, an integer compare beside the key pointer
	// already loaded instead of a call comparing string bytes behind
	// another pointer (a lookup in a set of thousands of names built at
	// run time, as an overlay's listToAttrs, is a dozen comparisons)
	pre  uint64
	pos  *syntax.Pos // nil when unknown
	bare *attrKey    // the same name without pos, made on first use (noPos)
}

func newKey(name string, pos *syntax.Pos) *attrKey {
	return &attrKey{name: name, pre: keyPre(name), pos: pos}
}

// keyPre is s's first 8 bytes as a big-endian integer, zero-padded, so
// that integer order is the bytes' order: names of different pre compare
// as their pres; names of equal pre both at most 8 bytes long compare as
// their lengths (the shorter is a prefix of the other, or they are equal).
func keyPre(s string) uint64 {
	if len(s) >= 8 {
		return binary.BigEndian.Uint64(unsafe.Slice(unsafe.StringData(s), 8))
	}
	var p uint64
	for i := 0; i < len(s); i++ {
		p |= uint64(s[i]) << (56 - 8*i)
	}
	return p
}

// lessName is whether k's name sorts before name (of prefix pre).
func (k *attrKey) lessName(pre uint64, name string) bool {
	if k.pre != pre {
		return k.pre < pre
	}
	if len(k.name) <= 8 && len(name) <= 8 {
		return len(k.name) < len(name)
	}
	return k.name < name
}

// isName is whether k's name is name (of prefix pre).
func (k *attrKey) isName(pre uint64, name string) bool {
	return k.pre == pre && len(k.name) == len(name) && (len(name) <= 8 || k.name[8:] == name[8:])
}

// cmpKeys compares the names of two keys.
func cmpKeys(a, b *attrKey) int {
	if a == b {
		return 0
	}
	if a.pre != b.pre {
		if a.pre < b.pre {
			return -1
		}
		return 1
	}
	if len(a.name) <= 8 && len(b.name) <= 8 {
		return len(a.name) - len(b.name)
	}
	return strings.Compare(a.name, b.name)
}

// sameName is whether two keys have the same name.
func sameName(a, b *attrKey) bool {
	return a == b || a.isName(b.pre, b.name)
}

// noPos is a key of k's name without a position. Keys belong to one
// evaluator (the compiler's too: compiled code is per evaluator), which
// runs on one goroutine at a time, so making bare lazily is no race.
func (k *attrKey) noPos() *attrKey {
	if k.pos == nil {
		return k
	}
	if k.bare == nil {
		k.bare = &attrKey{name: k.name, pre: k.pre}
	}
	return k.bare
}

// Keys of names the builtins give their results. Without a position, a
// key is never written to (noPos), so evaluators may share these.
var (
	keySuccess = newKey("success", nil)
	keyValue   = newKey("value", nil)
	keyRight   = newKey("right", nil)
	keyWrong   = newKey("wrong", nil)
)

// MkAttr makes an attribute without a position.
func MkAttr(name string, v Value) Attr { return Attr{key: newKey(name, nil), Val: v} }

// mkAttrPos makes an attribute defined at pos.
func mkAttrPos(name string, pos *syntax.Pos, v Value) Attr {
	return Attr{key: newKey(name, pos), Val: v}
}

// Name is the attribute's name.
func (a Attr) Name() string { return a.key.name }

// Pos is where the attribute was defined, nil when unknown.
func (a Attr) Pos() *syntax.Pos { return a.key.pos }

// Attrs is an attribute set, sorted by name. A set made by `big // small`
// keeps the small side as an overlay over the big one (flattened on first
// iteration), so that chains of updates do not copy the big side each
// time.
type Attrs struct {
	// own (p, n: a slice without its capacity, so that the header is 24
	// bytes and a set of 1, 3 or 5 attributes with it a size class
	// smaller) is sorted, unique, and overrides ov.base
	p  *Attr
	n  int
	ov *overlay // nil unless own is an overlay (kept out of line)
}

// own is the set's own attributes.
func (a *Attrs) own() []Attr { return unsafe.Slice(a.p, a.n) }

func (a *Attrs) setOwn(as []Attr) { a.p, a.n = unsafe.SliceData(as), len(as) }

type overlay struct {
	base *Attrs // itself an overlay at most maxOverlayDepth-1 deep
	n    int    // number of distinct names
}

var emptyAttrs = &Attrs{}

func mkAttrs(as []Attr) *Attrs {
	a := &Attrs{}
	a.setOwn(as)
	return a
}

// allocAttrsIn makes a set whose attributes (n, the length of the array
// type A) live in the same allocation as the header.
func allocAttrsIn[A any](n int) *Attrs {
	x := new(struct {
		Attrs
		a A
	})
	x.p, x.n = (*Attr)(unsafe.Pointer(&x.a)), n
	return &x.Attrs
}

// allocAttrs makes a set of n attributes to be filled in by the caller
// (in sorted order); small sets take one allocation.
func allocAttrs(n int) *Attrs {
	switch n {
	case 1:
		return allocAttrsIn[[1]Attr](1)
	case 2:
		return allocAttrsIn[[2]Attr](2)
	case 3:
		return allocAttrsIn[[3]Attr](3)
	case 4:
		return allocAttrsIn[[4]Attr](4)
	case 5:
		return allocAttrsIn[[5]Attr](5)
	case 6:
		return allocAttrsIn[[6]Attr](6)
	case 7:
		return allocAttrsIn[[7]Attr](7)
	case 8:
		return allocAttrsIn[[8]Attr](8)
	}
	return mkAttrs(make([]Attr, n))
}

// allocAttrsThunksIn makes a set of n attributes (the length of A) and
// the thunks of its values (T: an array of them) in one allocation:
// an attribute set literal's thunks live as long as the set, mostly.
func allocAttrsThunksIn[A, T any](n int) (*Attrs, []Thunk) {
	x := new(struct {
		Attrs
		a A
		t T
	})
	x.p, x.n = (*Attr)(unsafe.Pointer(&x.a)), n
	return &x.Attrs, unsafe.Slice((*Thunk)(unsafe.Pointer(&x.t)), unsafe.Sizeof(x.t)/unsafe.Sizeof(Thunk{}))
}

// attrsThunksAllocs[n][k] is allocAttrsThunksIn for n attributes and k
// thunks (1 <= k <= n <= 8).
var attrsThunksAllocs = [9][]func(int) (*Attrs, []Thunk){
	nil,
	{nil, allocAttrsThunksIn[[1]Attr, [1]Thunk]},
	{nil, allocAttrsThunksIn[[2]Attr, [1]Thunk], allocAttrsThunksIn[[2]Attr, [2]Thunk]},
	{nil, allocAttrsThunksIn[[3]Attr, [1]Thunk], allocAttrsThunksIn[[3]Attr, [2]Thunk], allocAttrsThunksIn[[3]Attr, [3]Thunk]},
	{nil, allocAttrsThunksIn[[4]Attr, [1]Thunk], allocAttrsThunksIn[[4]Attr, [2]Thunk], allocAttrsThunksIn[[4]Attr, [3]Thunk], allocAttrsThunksIn[[4]Attr, [4]Thunk]},
	{nil, allocAttrsThunksIn[[5]Attr, [1]Thunk], allocAttrsThunksIn[[5]Attr, [2]Thunk], allocAttrsThunksIn[[5]Attr, [3]Thunk], allocAttrsThunksIn[[5]Attr, [4]Thunk], allocAttrsThunksIn[[5]Attr, [5]Thunk]},
	{nil, allocAttrsThunksIn[[6]Attr, [1]Thunk], allocAttrsThunksIn[[6]Attr, [2]Thunk], allocAttrsThunksIn[[6]Attr, [3]Thunk], allocAttrsThunksIn[[6]Attr, [4]Thunk], allocAttrsThunksIn[[6]Attr, [5]Thunk], allocAttrsThunksIn[[6]Attr, [6]Thunk]},
	{nil, allocAttrsThunksIn[[7]Attr, [1]Thunk], allocAttrsThunksIn[[7]Attr, [2]Thunk], allocAttrsThunksIn[[7]Attr, [3]Thunk], allocAttrsThunksIn[[7]Attr, [4]Thunk], allocAttrsThunksIn[[7]Attr, [5]Thunk], allocAttrsThunksIn[[7]Attr, [6]Thunk], allocAttrsThunksIn[[7]Attr, [7]Thunk]},
	{nil, allocAttrsThunksIn[[8]Attr, [1]Thunk], allocAttrsThunksIn[[8]Attr, [2]Thunk], allocAttrsThunksIn[[8]Attr, [3]Thunk], allocAttrsThunksIn[[8]Attr, [4]Thunk], allocAttrsThunksIn[[8]Attr, [5]Thunk], allocAttrsThunksIn[[8]Attr, [6]Thunk], allocAttrsThunksIn[[8]Attr, [7]Thunk], allocAttrsThunksIn[[8]Attr, [8]Thunk]},
}

// allocAttrsThunks makes a set of n attributes and k thunks, in one
// allocation for small sets.
func allocAttrsThunks(n, k int) (*Attrs, []Thunk) {
	if k == 0 {
		return allocAttrs(n), nil
	}
	if n < len(attrsThunksAllocs) && k <= n {
		return attrsThunksAllocs[n][k](n)
	}
	return allocAttrs(n), make([]Thunk, k)
}

// attrsCopy is a set of a copy of as (sorted, unique), small ones in one
// allocation with the header.
func attrsCopy(as []Attr) *Attrs {
	if len(as) == 0 {
		return emptyAttrs
	}
	x := allocAttrs(len(as))
	copy(x.own(), as)
	return x
}

// NewAttrs builds an attrset from attributes in any order; later
// duplicates win.
func NewAttrs(as []Attr) *Attrs {
	sortAttrs(as)
	out := as[:0]
	for _, a := range as {
		if len(out) > 0 && sameName(out[len(out)-1].key, a.key) {
			out[len(out)-1] = a
			continue
		}
		out = append(out, a)
	}
	return mkAttrs(out)
}

// AttrsFromMap is a convenience for builtins building small sets.
func AttrsFromMap(m map[string]Value) *Attrs {
	as := make([]Attr, 0, len(m))
	for k, v := range m {
		as = append(as, MkAttr(k, v))
	}
	return NewAttrs(as)
}

func (a *Attrs) Len() int {
	if a.ov == nil {
		return len(a.own())
	}
	return a.ov.n
}

// All returns the attributes sorted by name. Do not modify the slice.
func (a *Attrs) All() []Attr {
	if a.ov != nil {
		a.setOwn(mergeAttrs(a.ov.base.All(), a.own()))
		a.ov = nil
	}
	return a.own()
}

// overlayDepth is how many overlays a lookup may pass through.
func (a *Attrs) overlayDepth() int {
	d := 0
	for x := a; x.ov != nil; x = x.ov.base {
		d++
	}
	return d
}

func findIn(as []Attr, name string) int {
	return findPre(as, keyPre(name), name)
}

// findPre is findIn of a name whose keyPre is pre.
func findPre(as []Attr, pre uint64, name string) int {
	if len(as) <= 8 {
		for i := range as {
			if as[i].key.isName(pre, name) {
				return i
			}
		}
		return -1
	}
	lo, hi := 0, len(as)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if as[m].key.lessName(pre, name) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(as) && as[lo].key.isName(pre, name) {
		return lo
	}
	return -1
}

// Lookup returns the attribute called name, or nil.
func (a *Attrs) Lookup(name string) *Attr {
	pre := keyPre(name)
	for {
		if i := findPre(a.own(), pre, name); i >= 0 {
			return &a.own()[i]
		}
		if a.ov == nil {
			return nil
		}
		a = a.ov.base
	}
}

// attrHint is where a selection site last found its name: at index i of
// a set's own attributes, under key. Sets made by one expression (a
// literal, a module's option set, a callPackage argument) share their key
// pointers and order, so a site selecting the same name from many of them
// finds it at the hint with one load and compare, where a search of a
// large set took a dozen key dereferences, each a likely cache miss.
type attrHint struct {
	key *attrKey
	i   int
}

// lookupHinted is Lookup trying h first, and updating it when the name
// is among the set's own attributes.
func (a *Attrs) lookupHinted(name string, h *attrHint) *Attr {
	own := a.own()
	if i := h.i; i < len(own) && own[i].key == h.key {
		return &own[i]
	}
	pre := keyPre(name)
	if i := findPre(own, pre, name); i >= 0 {
		h.key, h.i = own[i].key, i
		return &own[i]
	}
	for a.ov != nil {
		a = a.ov.base
		if i := findPre(a.own(), pre, name); i >= 0 {
			return &a.own()[i]
		}
	}
	return nil
}

func (a *Attrs) Get(name string) (Value, bool) {
	if x := a.Lookup(name); x != nil {
		return x.Val, true
	}
	return nil, false
}

// mergeAttrs merges two sorted attribute slices, b winning.
func mergeAttrs(a, b []Attr) []Attr {
	out := make([]Attr, 0, mergedLen(a, b))
	prefault(out)
	return mergeAttrsInto(out, a, b)
}

// mergedAttrs is the set of mergeAttrs(a, b), of exactly its size and,
// when small, in one allocation with its header: with len(a)+len(b)
// slots, a // b overriding names of a kept the unused ones.
func mergedAttrs(a, b []Attr) *Attrs {
	x := allocAttrs(mergedLen(a, b))
	mergeAttrsInto(x.own()[:0], a, b)
	return x
}

// mergedLen is the number of distinct names in a and b (both sorted).
func mergedLen(a, b []Attr) int {
	if len(a) == 0 || len(b) == 0 {
		return len(a) + len(b)
	}
	common := 0
	if len(b) <= 8 && len(a) > 32 {
		for _, x := range b {
			if findPre(a, x.key.pre, x.Name()) >= 0 {
				common++
			}
		}
		return len(a) + len(b) - common
	}
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch c := cmpKeys(a[i].key, b[j].key); {
		case c < 0:
			i++
		case c > 0:
			j++
		default:
			common++
			i++
			j++
		}
	}
	return len(a) + len(b) - common
}

// mergeAttrsInto appends the merge of a and b to out (of the capacity
// mergedLen counted).
func mergeAttrsInto(out, a, b []Attr) []Attr {
	if len(b) <= 8 && len(a) > 32 {
		// few new attributes: copy runs of a between binary-searched
		// insertion points
		i := 0
		for _, x := range b {
			rest := a[i:]
			j := sort.Search(len(rest), func(k int) bool { return !rest[k].key.lessName(x.key.pre, x.Name()) })
			out = append(out, rest[:j]...)
			out = append(out, x)
			i += j
			if i < len(a) && sameName(a[i].key, x.key) {
				i++
			}
		}
		return append(out, a[i:]...)
	}
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch c := cmpKeys(a[i].key, b[j].key); {
		case c < 0:
			out = append(out, a[i])
			i++
		case c > 0:
			out = append(out, b[j])
			j++
		default:
			out = append(out, b[j])
			i++
			j++
		}
	}
	out = append(out, a[i:]...)
	return append(out, b[j:]...)
}

const (
	overlayMax  = 32 // largest overlay kept unflattened
	overlayBase = 64 // smallest base worth an overlay
	// A few attributes over a set at least a little larger are an overlay
	// too, stacked up to maxOverlayDepth deep: derivation.nix makes, per
	// derivation, `common = drvAttrs // {<outputs>, all, drvAttrs}` and
	// per output `common // { outPath = ...; ... }`, and instantiating
	// many derivations keeps them all; flat, each would copy drvAttrs.
	overlaySmall     = 4
	overlaySmallBase = 6
	maxOverlayDepth  = 3
)

// Update is a // b.
func (a *Attrs) Update(b *Attrs) *Attrs {
	if b.Len() == 0 {
		return a
	}
	if a.Len() == 0 {
		return b
	}
	if b.ov == nil && len(b.own()) <= overlayMax {
		base, over := a, b.own()
		if a.ov != nil {
			if len(a.ov.base.own()) < overlayBase && len(a.own())+len(b.own()) > overlaySmall {
				// a few attributes over a small overlay: stack them
				if len(b.own()) <= overlaySmall && a.overlayDepth() < maxOverlayDepth {
					return newOverlay(a, append([]Attr(nil), b.own()...))
				}
				return mergedAttrs(a.All(), b.All())
			}
			base, over = a.ov.base, mergeAttrs(a.own(), b.own())
		}
		if len(over) <= overlayMax && (len(base.own()) >= overlayBase ||
			len(over) <= overlaySmall && len(base.own()) >= overlaySmallBase) {
			if a.ov == nil {
				over = append([]Attr(nil), over...)
			}
			return newOverlay(base, over)
		}
	}
	return mergedAttrs(a.All(), b.All())
}

// newOverlay makes the set of over (sorted, owned) over base.
func newOverlay(base *Attrs, over []Attr) *Attrs {
	n := base.Len()
	for i := range over {
		if base.Lookup(over[i].Name()) == nil {
			n++
		}
	}
	x := &Attrs{ov: &overlay{base: base, n: n}}
	x.setOwn(over)
	return x
}

// Lambda is a closure.
type Lambda struct {
	fn  *lambdaCode
	env *Env
}

// PrimOpFn implements a builtin. Arguments arrive unforced.
type PrimOpFn func(ev *Evaluator, args []Value) Value

// PrimOp is a builtin function of fixed arity.
type PrimOp struct {
	Name  string
	Arity int
	Fn    PrimOpFn
}

// NewPrimOp makes a builtin that can be installed with Options.Builtins.
func NewPrimOp(name string, arity int, fn PrimOpFn) *PrimOp {
	return &PrimOp{Name: name, Arity: arity, Fn: fn}
}

// PrimOpApp is a partially applied builtin.
type PrimOpApp struct {
	Op   *PrimOp
	Args []Value
}

// Env holds the variables of one scope level. The slots follow up
// inline (one allocation of 8+16n bytes, no slice header); the compiled
// code knows how many there are. newEnv allocates it.
type Env struct {
	up *Env
	v0 Value // slot 0; slots 1.. follow in the same allocation
}

const valueSize = unsafe.Sizeof(Value(nil))

// slot returns slot i (i < the number of slots the Env was made with).
func (e *Env) slot(i int) *Value {
	return (*Value)(unsafe.Add(unsafe.Pointer(&e.v0), uintptr(i)*valueSize))
}

func (e *Env) get(i int) Value { return *e.slot(i) }

// slots returns the first n slots as a slice.
func (e *Env) slots(n int) []Value { return unsafe.Slice(&e.v0, n) }

// Thunk is a delayed computation, in 24 bytes (thunks are a fifth of a
// module-system evaluation's heap): pending, v holds its code (a code,
// which no Nix value is) and env its environment; running, env is the
// blackhole marker; done, env is nil and v the value. An apply thunk
// (applyEnv) keeps its code in its environment instead and v free for
// its own use (the function or the argument), until it is done.
type Thunk struct {
	env *Env
	v   Value
}

// blackhole marks a thunk being forced.
var blackhole = &Env{}

func isCode(v Value) bool {
	_, ok := v.(code)
	return ok
}

func (t *Thunk) done() bool    { return t.env == nil && !isCode(t.v) }
func (t *Thunk) running() bool { return t.env == blackhole }

// delayed makes t pending: c evaluated in env.
func (t *Thunk) delayed(c code, env *Env) { t.env, t.v = env, c }

func newThunk(c code, env *Env) *Thunk { return &Thunk{env: env, v: c} }

// touchFresh makes the first touch of a thunk in fresh, zeroed memory
// (a slab) a store. Its fields are pointers, and a pointer store comes
// behind the write-barrier branch, so where the compiler cannot tell
// that t is not nil it loads from t first (an explicit nil check): on a
// fresh page that load maps the kernel's zero page, and the store after
// it faults a second time to copy it, with a TLB flush across the other
// core. Storing an integer zero over the zero word needs no barrier (the
// old and the new pointer are both nil); t must be fresh memory.
func (t *Thunk) touchFresh() { *(*uintptr)(unsafe.Pointer(&t.env)) = 0 }

// applyEnv makes e the environment of apply thunks of code c: c goes
// into e.up's word (an apply thunk's code reads only e's slots), so
// that a thunk needs no word of its own for it while v is taken.
func (e *Env) applyEnv(c code) { *(*code)(unsafe.Pointer(&e.up)) = c }

// applyCode is the code applyEnv put into e.
func (e *Env) applyCode() code { return *(*code)(unsafe.Pointer(&e.up)) }

// NewThunk delays fn, for builtins that build lazy structures.
func NewThunk(fn func(ev *Evaluator) Value) *Thunk {
	return newThunk(func(ev *Evaluator, _ *Env) Value { return fn(ev) }, nil)
}

// forcedFn is the v field of the apply thunk being forced (forceThunk
// has just pushed it on ev.running): its function, or for sharedApply
// thunks its argument.
func (ev *Evaluator) forcedFn() Value { return ev.running[len(ev.running)-1].t.v }

// noCallPos is the position of the calls the apply thunks make: none,
// as in C++ Nix, whose lazy applications (map, genList, mapAttrs …) are
// called without one, so that an error in them is reported without an
// "at" line.
var noCallPos syntax.Pos

func apply1Code(ev *Evaluator, e *Env) Value {
	return ev.call(ev.Force(ev.forcedFn()), e.v0, noCallPos)
}

// apply2Thunk delays f applied to a and b. The apply thunks keep the
// arguments in an Env and the function in the thunk's v field (unused
// until the thunk is done), so that they need no closure allocation.
// Separate allocations: the environment becomes garbage once the thunk is
// forced, the thunk may live on in a list.
func apply2Thunk(f, a, b Value) *Thunk {
	e := newEnv(nil, 2)
	e.applyEnv(apply2Code)
	e.v0, *e.slot(1) = a, b
	return &Thunk{env: e, v: f}
}

// applySlab allocates the apply thunks of one zipAttrsWith call
// together: thunks and environments in one slab each instead of two
// objects per element.
type applySlab struct {
	ts  []Thunk
	e2s []env2 // two arguments
}

type env2 struct {
	up *Env
	a  [2]Value
}

func newApplySlab(n int) applySlab {
	s := applySlab{ts: make([]Thunk, n), e2s: make([]env2, n)}
	prefault(s.ts)
	prefault(s.e2s)
	return s
}

// apply2 is element i: f applied to a and b.
func (s *applySlab) apply2(i int, f, a, b Value) *Thunk {
	e := &s.e2s[i]
	e.a[0], e.a[1] = a, b
	t := &s.ts[i]
	env := (*Env)(unsafe.Pointer(e))
	env.applyEnv(apply2Code)
	t.env, t.v = env, f
	return t
}

// sharedApply makes the n thunks of f applied to each element of a
// builtin's result (map, genList, mapAttrs): one environment holds f (and the code) for
// all of them, and each thunk keeps its own argument in its v field
// (unused until it is done), so an element costs 24 bytes (a thunk) and
// no environment of its own.
func sharedApply(n int, f Value, c code) []Thunk {
	fe := newEnv(nil, 1)
	fe.applyEnv(c)
	fe.v0 = f
	ts := make([]Thunk, n)
	prefault(ts)
	inChunks(n, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			ts[i].env = fe
		}
	})
	return ts
}

// applyArgCode is the code of a sharedApply thunk: f (in the shared
// environment) applied to the thunk's argument.
func applyArgCode(ev *Evaluator, e *Env) Value {
	return ev.call(ev.Force(e.v0), ev.forcedFn(), noCallPos)
}

// genListThunks makes genList's n thunks of f applied to each index
// without boxing the indexes up front (an Int above 255 in an interface
// is an allocation of its own): the shared environment also holds the
// first thunk, and a thunk's index is its distance from it.
func genListThunks(n int, f Value) []Thunk {
	fe := newEnv(nil, 2)
	fe.applyEnv(genListCode)
	fe.v0 = f
	ts := make([]Thunk, n)
	prefault(ts)
	if n > 0 {
		*fe.slot(1) = &ts[0]
	}
	inChunks(n, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			ts[i].env = fe
		}
	})
	return ts
}

func genListCode(ev *Evaluator, e *Env) Value {
	t := ev.running[len(ev.running)-1].t
	first := e.get(1).(*Thunk)
	i := (uintptr(unsafe.Pointer(t)) - uintptr(unsafe.Pointer(first))) / unsafe.Sizeof(Thunk{})
	return ev.call(ev.Force(e.v0), ev.boxInt(Int(i)), noCallPos)
}

// applyAttrCode is mapAttrs' sharedApply code: the thunk's argument is
// the *Attr of the mapped set, f gets its name and value.
func applyAttrCode(ev *Evaluator, e *Env) Value {
	a := ev.forcedFn().(*Attr)
	return ev.call2(ev.Force(e.v0), Str(a.Name()), a.Val, noCallPos)
}

func apply2Code(ev *Evaluator, e *Env) Value {
	return ev.call2(ev.Force(ev.forcedFn()), e.v0, e.get(1), noCallPos)
}

// TypeName is the name Nix uses for the type of a forced value.
func TypeName(v Value) string {
	switch v.(type) {
	case Null:
		return "null"
	case Bool:
		return "bool"
	case Int:
		return "int"
	case Float:
		return "float"
	case *String:
		return "string"
	case Path:
		return "path"
	case *List:
		return "list"
	case *Attrs:
		return "set"
	case *Lambda, *PrimOp, *PrimOpApp:
		return "lambda"
	}
	return "thunk"
}

// showType is the phrase Nix uses in type errors ("a string", "an integer").
func showType(v Value) string {
	switch x := v.(type) {
	case Null:
		return "null"
	case Bool:
		return "a Boolean"
	case Int:
		return "an integer"
	case Float:
		return "a float"
	case *String:
		if len(x.Ctx()) > 0 {
			return "a string with context"
		}
		return "a string"
	case Path:
		return "a path"
	case *List:
		return "a list"
	case *Attrs:
		return "a set"
	case *Lambda:
		return "a function"
	case *PrimOp:
		return "a built-in function"
	case *PrimOpApp:
		return "a partially applied built-in function"
	}
	return "a thunk"
}

func cmpAttrName(a, b Attr) int { return cmpKeys(a.key, b.key) }

// sortAttrs sorts by name, keeping the order of equal names.
func sortAttrs(as []Attr) {
	if slices.IsSortedFunc(as, cmpAttrName) {
		return
	}
	if len(as) <= 16 {
		for i := 1; i < len(as); i++ {
			for j := i; j > 0 && cmpKeys(as[j].key, as[j-1].key) < 0; j-- {
				as[j], as[j-1] = as[j-1], as[j]
			}
		}
		return
	}
	// pattern-defeating quicksort of indices, ties broken by position:
	// stable, and far fewer moves than slices.SortStableFunc
	idx := make([]int32, len(as))
	for i := range idx {
		idx[i] = int32(i)
	}
	slices.SortFunc(idx, func(a, b int32) int {
		if c := cmpKeys(as[a].key, as[b].key); c != 0 {
			return c
		}
		return int(a - b)
	})
	out := make([]Attr, len(as))
	prefault(out)
	for i, j := range idx {
		out[i] = as[j]
	}
	copy(as, out)
}

// ContextUnion gathers the contexts of many strings into one. Merging
// them pairwise, as MergeContext does, copies the growing union once per
// string: quadratic when thousands of strings each bring a store path
// (C++ Nix inserts into a set instead). The union keeps the elements
// unsorted and sorts once at the end; duplicates are squeezed out
// whenever the buffer doubles, so strings sharing one large context do
// not pile up copies of it.
type ContextUnion struct {
	one   Context  // while only one distinct context was added: shared, not copied
	elems []string // afterwards: everything added, partly sorted and unique
	clean int      // elems[:clean] was the result of the last squeeze
}

// Add adds the elements of c.
func (u *ContextUnion) Add(c Context) {
	if len(c) == 0 {
		return
	}
	if u.elems == nil {
		if u.one == nil || sameContext(u.one, c) {
			u.one = c
			return
		}
		u.elems = make([]string, 0, 2*(len(u.one)+len(c)))
		u.elems = append(u.elems, u.one...)
		u.one = nil
	}
	u.elems = append(u.elems, c...)
	if len(u.elems) > 2*u.clean+64 {
		u.squeeze()
	}
}

// AddString adds the single element e.
func (u *ContextUnion) AddString(e string) {
	if u.elems == nil && u.one == nil {
		u.one = Context{e}
		return
	}
	u.Add(Context{e})
}

func (u *ContextUnion) squeeze() {
	slices.Sort(u.elems)
	u.elems = slices.Compact(u.elems)
	u.clean = len(u.elems)
}

// Context returns the union, sorted.
func (u *ContextUnion) Context() Context {
	if u.elems == nil {
		return u.one
	}
	if u.clean != len(u.elems) {
		u.squeeze()
	}
	return Context(u.elems)
}

// sameContext tells whether a and b are the same slice (not merely equal:
// that would cost as much as merging).
func sameContext(a, b Context) bool {
	return len(a) == len(b) && unsafe.SliceData(a) == unsafe.SliceData(b)
}
