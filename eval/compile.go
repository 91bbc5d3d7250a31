package eval

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"sync/atomic"
	"unsafe"

	"github.com/tvix-go/tvix/eval/syntax"
)

// code is a compiled expression. It may return an unforced thunk (for
// variable references); callers that need a value force it.
type code func(ev *Evaluator, env *Env) Value

// scope is the compile-time view of one Env level.
type scope struct {
	parent *scope
	names  map[string]int
	// few are the names of a small scope, slot i's at i, instead of
	// names: a map is ~300 bytes, a lambda's or let's scope is needed
	// only while compiling it, and an imported file has several
	// (import-many: 0.85 of the 6.7 KB allocated for each file)
	few    []string
	with   bool
	consts map[string]Value // only the global scope: names resolved to constants
}

// maxFew is the most names a scope keeps in few rather than in a map.
const maxFew = 8

// slot is the slot of name in s, if s binds it (the last binding of a
// name that is bound twice, as the map's).
func (s *scope) slot(name string) (int, bool) {
	if s.names != nil {
		slot, ok := s.names[name]
		return slot, ok
	}
	for i := len(s.few) - 1; i >= 0; i-- {
		if s.few[i] == name {
			return i, true
		}
	}
	return 0, false
}

// newScope is a scope under parent of the names, slot i's at i.
func newScope(parent *scope, names []string) *scope {
	if len(names) <= maxFew {
		return &scope{parent: parent, few: names}
	}
	m := make(map[string]int, len(names))
	for i, n := range names {
		m[n] = i
	}
	return &scope{parent: parent, names: m}
}

type compiler struct {
	ev  *Evaluator
	dir string // directory of the file, for relative paths
}

type lambdaCode struct {
	name    string
	arg     string
	pos     syntax.Pos
	nslots  int
	formals []formalCode
	atSlot  int
	body    code
	// inner is set when the body is itself a lambda (a: b: ...), so that
	// two-argument calls need no intermediate closure.
	inner *lambdaCode
	// (the flags together: 112 bytes, not 128, each lambda of every
	// imported file)
	simple   bool
	ellipsis bool
	// noCapture: evaluating the body never keeps a reference to its
	// environment (no closures or thunks are made), so the environment
	// can be reused once the call returns.
	noCapture bool
}

// capturesEnv reports whether evaluating n may create a closure or thunk
// that refers to the current environment. It is conservative.
func (cp *compiler) capturesEnv(n syntax.Node, sc *scope) bool {
	switch n := n.(type) {
	case *syntax.Int, *syntax.Float, *syntax.Str, *syntax.Var, *syntax.CurPos:
		return false
	case *syntax.Path:
		return n.Kind == syntax.PathHome
	case *syntax.Binary:
		return cp.capturesEnv(n.L, sc) || cp.capturesEnv(n.R, sc)
	case *syntax.Unary:
		return cp.capturesEnv(n.E, sc)
	case *syntax.If:
		return cp.capturesEnv(n.Cond, sc) || cp.capturesEnv(n.Then, sc) || cp.capturesEnv(n.Else, sc)
	case *syntax.Assert:
		return cp.capturesEnv(n.Cond, sc) || cp.capturesEnv(n.Body, sc)
	case *syntax.HasAttr:
		return cp.capturesEnv(n.E, sc) || cp.dynCaptures(n.Path, sc)
	case *syntax.Select:
		return cp.capturesEnv(n.E, sc) || cp.dynCaptures(n.Path, sc) || n.Or != nil && cp.capturesEnv(n.Or, sc)
	case *syntax.Interp:
		if n.IsPath {
			return true
		}
		for _, p := range n.Parts {
			if cp.capturesEnv(p, sc) {
				return true
			}
		}
		return false
	case *syntax.Call:
		if cp.capturesEnv(n.Fn, sc) {
			return true
		}
		for _, a := range n.Args {
			if !cp.envFreeLazy(a, sc) {
				return true
			}
		}
		return false
	case *syntax.List:
		for _, it := range n.Items {
			if !cp.envFreeLazy(it, sc) {
				return true
			}
		}
		return false
	case *syntax.Attrs:
		if n.Rec || len(n.Dynamic) > 0 {
			return true
		}
		for _, d := range n.Attrs {
			// (inherit (x) a; is a selection x.a)
			if !cp.envFreeLazy(d.E, sc) {
				return true
			}
		}
		return false
	}
	return true
}

// envFreeLazy: in a lazy position (of a scope whose variables all have
// their values: a lambda's, see envFreeThunk.fill) the expression makes
// nothing that refers to the environment.
func (cp *compiler) envFreeLazy(n syntax.Node, sc *scope) bool {
	if directValue(n) {
		return true
	}
	switch n := n.(type) {
	case *syntax.Binary:
		return cp.envFreeBinary(n, sc) != nil
	case *syntax.Select:
		return cp.envFreeSelect(n, sc) != nil
	}
	return false
}

// dynCaptures: a dynamic name of the path may make something that
// refers to the environment (the names themselves are evaluated in
// place).
func (cp *compiler) dynCaptures(path []syntax.AttrName, sc *scope) bool {
	for _, a := range path {
		if a.Dyn != nil && cp.capturesEnv(a.Dyn, sc) {
			return true
		}
	}
	return false
}

// directValue: in a lazy position the expression is used as is (no thunk
// over the environment is made for it).
func directValue(n syntax.Node) bool {
	switch n.(type) {
	case *syntax.Var, *syntax.Int, *syntax.Float, *syntax.Str:
		return true
	}
	return false
}

func staticPath(p []syntax.AttrName) bool {
	for _, a := range p {
		if a.Dyn != nil {
			return false
		}
	}
	return true
}

type formalCode struct {
	name  string
	slot  int
	def   code
	alias int // slot+1 of the formal a default that is a bare variable names
	pos   syntax.Pos
	key   *attrKey // name and pos, for functionArgs
	hint  attrHint // where the last argument set had it
}

func constCode(v Value) code { return func(*Evaluator, *Env) Value { return v } }

// compiled is code with what the compiler knows of it, to choose how a
// lazy position holds it.
type compiled struct {
	c code
	// cheap: the expression can be evaluated eagerly when a binding is
	// created instead of allocating a thunk: it cannot fail, does not
	// loop and costs less than the thunk.
	cheap bool
	// isK: a constant, konst, needing neither code nor thunk.
	konst Value
	isK   bool
	// sameLevelVar: a reference to slot sameSlot of the scope being
	// built (the slot may not be filled yet: a let or rec fills it last,
	// as an alias of that slot)
	sameLevelVar bool
	sameSlot     int
	// spec, if set, computes the value without forcing anything when its
	// operands are already values (integer arithmetic and comparison on
	// variables and constants); ok=false means a thunk is needed.
	spec func(ev *Evaluator, env *Env) (Value, bool)
	// free, if set, makes the thunk a failed speculation needs without
	// the environment (see envFreeThunk)
	free *envFreeThunk
}

func (cp *compiler) compile(n syntax.Node, sc *scope) code { return cp.comp(n, sc).c }

// literal is the constant of a number, string or path literal without
// its code (c is nil), for compAttrs, whose lazyOf needs the value only:
// the closure of each was garbage there. (Sets of constants are not made
// once and shared: Nix prints a set met twice as «repeated», and one
// literal evaluated twice is two sets there.)
func (cp *compiler) literal(n syntax.Node) (compiled, bool) {
	var v Value
	switch n := n.(type) {
	case *syntax.Int:
		v = Int(n.V)
	case *syntax.Float:
		v = Float(n.V)
	case *syntax.Str:
		v = Str(n.V)
	case *syntax.Path:
		switch n.Kind {
		case syntax.PathAbs:
			v = Path(canonPath(n.V))
		case syntax.PathRel:
			v = Path(canonPath(cp.dir + "/" + n.V))
		default:
			return compiled{}, false
		}
	default:
		return compiled{}, false
	}
	return compiled{cheap: true, konst: v, isK: true}, true
}

func (cp *compiler) comp(n syntax.Node, sc *scope) compiled {
	if c, ok := cp.literal(n); ok {
		c.c = constCode(c.konst)
		return c
	}
	switch n := n.(type) {
	case *syntax.Path:
		return cp.compPath(n)
	case *syntax.SPath:
		return cp.comp(&syntax.Call{Pos: n.Pos, Fn: &syntax.Var{Pos: n.Pos, Name: "__findFile"},
			Args: []syntax.Node{&syntax.Var{Pos: n.Pos, Name: "__nixPath"}, &syntax.Str{Pos: n.Pos, V: n.V}}}, sc)
	case *syntax.Var:
		return cp.compVar(n, sc)
	case *syntax.Interp:
		return compiled{c: cp.compInterp(n, sc)}
	case *syntax.Lambda:
		lc := cp.compLambda(n, sc)
		return compiled{c: func(ev *Evaluator, env *Env) Value { return &Lambda{fn: lc, env: env} }, cheap: true}
	case *syntax.List:
		return cp.compList(n, sc)
	case *syntax.Attrs:
		if n.Rec {
			return compiled{c: cp.compRecAttrs(n, sc)}
		}
		return cp.compAttrs(n, sc)
	case *syntax.Let:
		return compiled{c: cp.compLet(n, sc)}
	case *syntax.With:
		return compiled{c: cp.compWith(n, sc)}
	case *syntax.Select:
		return compiled{c: cp.compSelect(n, sc), spec: cp.specSelect(n, sc), free: cp.envFreeSelect(n, sc)}
	case *syntax.HasAttr:
		return compiled{c: cp.compHasAttr(n, sc)}
	case *syntax.Call:
		return compiled{c: cp.compCall(n, sc)}
	case *syntax.If:
		// behind one pointer, as call1Site
		s := &ifSite{cond: cp.compile(n.Cond, sc), th: cp.compile(n.Then, sc), el: cp.compile(n.Else, sc), pos: n.Pos}
		return compiled{c: func(ev *Evaluator, env *Env) Value {
			if ev.forceBool(s.cond(ev, env), s.pos) {
				return s.th(ev, env)
			}
			return s.el(ev, env)
		}}
	case *syntax.Assert:
		cond, body := cp.compile(n.Cond, sc), cp.compile(n.Body, sc)
		pos := n.Pos
		text := exprText(n.Cond)
		return compiled{c: func(ev *Evaluator, env *Env) Value {
			if !ev.forceBool(cond(ev, env), pos) {
				panic(&Error{Kind: ErrAssert, Msg: "assertion '" + text + "' failed", Pos: pos})
			}
			return body(ev, env)
		}}
	case *syntax.Unary:
		e := cp.compile(n.E, sc)
		pos := n.Pos
		if n.Op == "!" {
			// (forced without a position in C++ Nix)
			return compiled{c: func(ev *Evaluator, env *Env) Value { return Bool(!ev.forceBool(e(ev, env), syntax.Pos{})) }}
		}
		return compiled{c: func(ev *Evaluator, env *Env) Value { return ev.arith('-', Int(0), e(ev, env), pos) }}
	case *syntax.Binary:
		return compiled{c: cp.compBinary(n, sc), spec: cp.specBinary(n, sc), free: cp.envFreeBinary(n, sc)}
	case *syntax.CurPos:
		v := posAttrs(n.Pos)
		return compiled{c: constCode(v), cheap: true}
	}
	panic(&Error{Kind: ErrEval, Msg: "internal error: unknown syntax node"})
}

type ifSite struct {
	cond, th, el code
	pos          syntax.Pos
}

func exprText(n syntax.Node) string {
	return syntax.Print(n)
}

func posAttrs(p syntax.Pos) Value {
	if !p.IsValid() {
		return Null{}
	}
	l, c := p.LineCol()
	return NewAttrs([]Attr{MkAttr("file", Str(posFile(p.Src))), MkAttr("line", Int(l)), MkAttr("column", Int(c))})
}

// posFile is the file of a position as C++ Nix 2.8 gives it to the
// program (unsafeGetAttrPos, __curPos, XML locations): for an expression
// from -E or stdin, its text (error messages say «string» / «stdin»).
func posFile(src *syntax.Source) string {
	if src.FromText() {
		return string(src.Text)
	}
	return src.Name
}

func (cp *compiler) compPath(n *syntax.Path) compiled {
	if c, ok := cp.literal(n); ok { // absolute and relative paths
		c.c = constCode(c.konst)
		return c
	}
	rest := n.V[1:]
	return compiled{c: func(ev *Evaluator, env *Env) Value {
		home := ev.getenv("HOME")
		return Path(canonPath(home + rest))
	}}
}

// canonPath removes ".", ".." and duplicate slashes without touching the
// file system, as Nix does for path literals.
func canonPath(p string) string {
	if p == "" {
		return "/"
	}
	c := path.Clean(p)
	if !strings.HasPrefix(c, "/") {
		c = "/" + c
	}
	return c
}

func (cp *compiler) compVar(n *syntax.Var, sc *scope) compiled {
	name := n.Name
	depth := 0
	var withs []int
	for s := sc; s != nil; s = s.parent {
		if s.with {
			withs = append(withs, depth)
			depth++
			continue
		}
		if s.consts != nil {
			if v, ok := s.consts[name]; ok {
				return compiled{c: constCode(v), cheap: true, konst: v, isK: true}
			}
			break
		}
		if slot, ok := s.slot(name); ok {
			return compiled{c: slotCode(depth, slot), cheap: true, sameLevelVar: depth == 0, sameSlot: slot}
		}
		depth++
	}
	if len(withs) == 0 {
		panic(&Error{Kind: ErrEval, Msg: "undefined variable '" + name + "'", Pos: n.Pos})
	}
	pos := n.Pos
	return compiled{c: func(ev *Evaluator, env *Env) Value {
		cur, d := env, 0
		for _, wd := range withs {
			for d < wd {
				cur = cur.up
				d++
			}
			// (a with's set is forced without a position in C++ Nix)
			a := ev.forceAttrsAt(cur.v0, syntax.Pos{})
			if v, ok := a.Get(name); ok {
				return v
			}
		}
		ev.throwAt(pos, "undefined variable '%s'", name)
		return nil
	}}
}

func slotCode(depth, slot int) code {
	switch depth {
	case 0:
		if slot == 0 {
			return func(_ *Evaluator, env *Env) Value { return env.v0 }
		}
		return func(_ *Evaluator, env *Env) Value { return env.get(slot) }
	case 1:
		if slot == 0 {
			return func(_ *Evaluator, env *Env) Value { return env.up.v0 }
		}
		return func(_ *Evaluator, env *Env) Value { return env.up.get(slot) }
	case 2:
		return func(_ *Evaluator, env *Env) Value { return env.up.up.get(slot) }
	case 3:
		return func(_ *Evaluator, env *Env) Value { return env.up.up.up.get(slot) }
	case 4:
		// nixpkgs' lib reaches its own functions through a few levels
		return func(_ *Evaluator, env *Env) Value { return env.up.up.up.up.get(slot) }
	case 5:
		return func(_ *Evaluator, env *Env) Value { return env.up.up.up.up.up.get(slot) }
	}
	return func(_ *Evaluator, env *Env) Value {
		for i := 0; i < depth; i++ {
			env = env.up
		}
		return env.get(slot)
	}
}

// delay turns compiled code into a value for a lazy position: constants
// and closures directly, everything else as a thunk.
func delay(c compiled, allowSameLevel bool) func(ev *Evaluator, env *Env) Value {
	if c.isK {
		k := c.konst
		return func(*Evaluator, *Env) Value { return k }
	}
	if c.cheap && (allowSameLevel || !c.sameLevelVar) {
		return c.c
	}
	f := c.c
	// (a slot that is not initialised yet reads as nil: no speculation)
	if spec, free := c.spec, c.free; spec != nil && free != nil {
		return func(ev *Evaluator, env *Env) Value {
			if v, ok := spec(ev, env); ok {
				return v
			}
			t := new(Thunk)
			t.touchFresh() // (fill is out of line)
			if !free.fill(t, ev, env) {
				t.delayed(f, env)
			}
			return t
		}
	}
	if spec := c.spec; spec != nil {
		return func(ev *Evaluator, env *Env) Value {
			if v, ok := spec(ev, env); ok {
				return v
			}
			return newThunk(f, env)
		}
	}
	return func(_ *Evaluator, env *Env) Value { return newThunk(f, env) }
}

// specBinary speculates integer arithmetic and comparisons whose operands
// are variables or integer constants: when both are already evaluated
// integers the result is computed at once (it cannot fail: Nix integer
// arithmetic wraps), saving the thunk fib-style code would allocate.
func (cp *compiler) specBinary(n *syntax.Binary, sc *scope) func(*Evaluator, *Env) (Value, bool) {
	switch n.Op {
	case "+", "-", "*", "<", ">", "<=", ">=", "==", "!=":
	default:
		return nil
	}
	operand := func(e syntax.Node) code {
		switch e := e.(type) {
		case *syntax.Int:
			v := Int(e.V)
			return func(*Evaluator, *Env) Value { return v }
		case *syntax.Var:
			c := cp.compVar(e, sc)
			if c.isK || c.cheap {
				return c.c
			}
		}
		return nil
	}
	l, r := operand(n.L), operand(n.R)
	_, lk := n.L.(*syntax.Int)
	_, rk := n.R.(*syntax.Int)
	if l == nil || r == nil || lk && rk {
		// constant expressions stay thunks, as in Nix (visible as <CODE>
		// when printing without --strict)
		return nil
	}
	op := n.Op
	return func(ev *Evaluator, env *Env) (Value, bool) {
		a, ok := l(ev, env).(Int)
		if !ok {
			return nil, false
		}
		b, ok := r(ev, env).(Int)
		if !ok {
			return nil, false
		}
		switch op {
		case "+":
			return ev.boxInt(a + b), true
		case "-":
			return ev.boxInt(a - b), true
		case "*":
			return ev.boxInt(a * b), true
		case "<":
			return Bool(a < b), true
		case ">":
			return Bool(a > b), true
		case "<=":
			return Bool(a <= b), true
		case ">=":
			return Bool(a >= b), true
		case "==":
			return Bool(a == b), true
		}
		return Bool(a != b), true
	}
}

// envFreeThunk makes the thunk of a binary operation of one variable
// and an integer constant (x + 1, i < n with a constant n is not one)
// whose speculation failed, x being unevaluated: the thunk keeps x's
// value in its v field, as an apply thunk keeps its argument, and the
// code in an environment of its own (site), so that it does not refer to
// the environment it was made in. A lambda whose body makes only such
// thunks can then reuse its environment (noCapture: concatMap (x: [ x x
// (x + 1) ]) makes no environment per element, a recursion
// f (i + 1) none per call).
type envFreeThunk struct {
	site *Env // applyEnv of the operation with x read from the thunk
	get  code // x
}

// fill makes t the thunk, unless x reads as nil (a slot of a let or rec
// being filled: the thunk must then read it later, from env).
func (f *envFreeThunk) fill(t *Thunk, ev *Evaluator, env *Env) bool {
	v := f.get(ev, env)
	if v == nil {
		return false
	}
	t.env, t.v = f.site, v
	return true
}

// forcedArg is the operand of an envFreeThunk's operation: the v field
// of the thunk being forced, read before anything else is forced.
func forcedArg(ev *Evaluator, _ *Env) Value { return ev.forcedFn() }

// envFreeBinary is the envFreeThunk of n, nil unless n is an operation
// specBinary speculates on one variable and one integer constant.
func (cp *compiler) envFreeBinary(n *syntax.Binary, sc *scope) *envFreeThunk {
	v, k, varLeft := envFreeOperands(n)
	if v == nil {
		return nil
	}
	c := cp.compVar(v, sc)
	if !c.isK && !c.cheap {
		return nil
	}
	kc := constCode(Int(k.V))
	// (each operand code is called once, left first, as compBinary's
	// code does: the constant's forces nothing, so forcedArg is read
	// while the thunk is the one being forced)
	l, r := code(forcedArg), kc
	if !varLeft {
		l, r = kc, forcedArg
	}
	site := newEnv(nil, 1)
	site.applyEnv(binCode(n.Op, l, r, n.Pos, n.RPos))
	return &envFreeThunk{site: site, get: c.c}
}

// envFreeOperands splits an operation of a variable and an integer
// constant that specBinary speculates on; v is nil for any other.
func envFreeOperands(n *syntax.Binary) (v *syntax.Var, k *syntax.Int, varLeft bool) {
	switch n.Op {
	case "+", "-", "*", "<", ">", "<=", ">=", "==", "!=":
	default:
		return nil, nil, false
	}
	if x, ok := n.L.(*syntax.Var); ok {
		if y, ok := n.R.(*syntax.Int); ok {
			return x, y, true
		}
	}
	if y, ok := n.L.(*syntax.Int); ok {
		if x, ok := n.R.(*syntax.Var); ok {
			return x, y, false
		}
	}
	return nil, nil, false
}

// envFreeSelect is the envFreeThunk of a selection specSelect
// speculates on (static names of a variable, no default): the thunk
// selects from the variable's value it holds.
func (cp *compiler) envFreeSelect(n *syntax.Select, sc *scope) *envFreeThunk {
	v, ok := n.E.(*syntax.Var)
	if !ok || n.Or != nil || !staticPath(n.Path) {
		return nil
	}
	c := cp.compVar(v, sc)
	if !c.cheap {
		return nil
	}
	names := make([]string, len(n.Path))
	for i, p := range n.Path {
		names[i] = p.Name
	}
	site := newEnv(nil, 1)
	site.applyEnv(selectCode(forcedArg, names, make([]code, len(names)), nil, n.Pos))
	return &envFreeThunk{site: site, get: c.c}
}

// specSelect speculates a lazy `v.a.b` (static names, v a variable):
// when v and the sets on the path are already evaluated and have the
// names, the selected value (often itself a thunk) is shared instead of
// making a thunk for the selection. Nothing is forced and nothing can
// fail on that path, so laziness is kept. inherit (v) a; is this case.
func (cp *compiler) specSelect(n *syntax.Select, sc *scope) func(*Evaluator, *Env) (Value, bool) {
	v, ok := n.E.(*syntax.Var)
	if !ok || n.Or != nil || !staticPath(n.Path) {
		return nil
	}
	base := cp.compVar(v, sc)
	if !base.cheap {
		return nil
	}
	get := base.c
	names := make([]string, len(n.Path))
	for i, p := range n.Path {
		names[i] = p.Name
	}
	hints := make([]attrHint, len(names))
	return func(ev *Evaluator, env *Env) (Value, bool) {
		v := get(ev, env)
		for i, name := range names {
			if t, ok := v.(*Thunk); ok {
				if !t.done() {
					return nil, false
				}
				v = t.v
			}
			a, ok := v.(*Attrs)
			if !ok {
				return nil, false
			}
			x := a.lookupHinted(name, &hints[i])
			if x == nil {
				return nil, false
			}
			v = x.Val
		}
		return v, true
	}
}

// lazyItem is one value in a lazy position of a list, attrset, let or
// rec: either computed directly (constants, closures, variables) or a
// thunk. All thunks of one construct are allocated in one slab.
type lazyItem struct {
	thunk  code
	spec   func(*Evaluator, *Env) (Value, bool)
	free   *envFreeThunk // with spec: the thunk when it fails
	direct func(*Evaluator, *Env) Value
	outer  bool // evaluate in env.up (inherit inside let / rec)
	// alias: slot+1 of the binding this one names (`g = f;` in a let or
	// rec): it gets f's cell itself, as C++ Nix's ExprVar::maybeThunk
	// gives it, so that f and g are one value for pointer equality
	// (`[ f ] == [ g ]` with a function f) and print alike
	alias int
}

type lazyVals struct {
	items []lazyItem
}

func lazyOf(c compiled, allowSameLevel bool) lazyItem {
	if c.isK {
		k := c.konst
		return lazyItem{direct: func(*Evaluator, *Env) Value { return k }}
	}
	if c.cheap && (allowSameLevel || !c.sameLevelVar) {
		return lazyItem{direct: c.c}
	}
	if c.cheap && c.sameLevelVar {
		// (a thunk unless compBindings keeps the alias)
		return lazyItem{thunk: c.c, alias: c.sameSlot + 1}
	}
	return lazyItem{thunk: c.c, spec: c.spec, free: c.free}
}

// newLazyVals has room for n items: the code keeps them as long as the
// file it compiled is imported, and append's slack was ~30% of them
// (import-many).
func newLazyVals(n int) *lazyVals { return &lazyVals{items: make([]lazyItem, 0, n)} }

func (lv *lazyVals) add(it lazyItem) {
	lv.items = append(lv.items, it)
}

// fill evaluates every item into out (len(out) == len(items)): first
// the direct and speculated values, then the thunks the speculation left,
// in one slab of just that many.
func (lv *lazyVals) fill(ev *Evaluator, env *Env, out []Value) {
	lv.fillWith(ev, env, out, nil)
}

// sure is how many items always become a thunk (no speculation, no
// alias): fillWith's pre may hold as many.
func (lv *lazyVals) sure() int {
	n := 0
	for i := range lv.items {
		if it := &lv.items[i]; it.thunk != nil && it.alias == 0 && it.spec == nil {
			n++
		}
	}
	return n
}

// fillWith is fill taking the first thunks it needs from pre (which
// sets fill with at most sure() of them, so all are used) and returns
// how many thunks it made.
func (lv *lazyVals) fillWith(ev *Evaluator, env *Env, out []Value, pre []Thunk) (thunks int) {
	need, aliases := 0, 0
	for i := range lv.items {
		it := &lv.items[i]
		e := env
		if it.outer {
			e = env.up
		}
		if it.thunk == nil {
			out[i] = it.direct(ev, e)
			continue
		}
		out[i] = nil
		if it.alias > 0 {
			aliases++
			continue
		}
		if it.spec != nil {
			if v, ok := it.spec(ev, e); ok {
				out[i] = v
				continue
			}
		}
		need++
	}
	if need > 0 {
		var slab []Thunk
		if need > len(pre) {
			slab = make([]Thunk, need-len(pre))
		}
		j := 0
		for i := range lv.items {
			it := &lv.items[i]
			if it.thunk == nil || it.alias > 0 || out[i] != nil {
				continue
			}
			e := env
			if it.outer {
				e = env.up
			}
			var t *Thunk
			if j < len(pre) {
				t = &pre[j]
			} else {
				t = &slab[j-len(pre)]
			}
			j++
			t.touchFresh()
			if it.free == nil || !it.free.fill(t, ev, e) {
				t.delayed(it.thunk, e)
			}
			out[i] = t
		}
	}
	if aliases > 0 {
		lv.fillAliases(env, out)
	}
	return need
}

// fillAliases gives each alias binding the cell of the binding it
// names (defined before it, see compBindings; so no cycles).
//
//go:noinline
func (lv *lazyVals) fillAliases(env *Env, out []Value) {
	var resolve func(i int) Value
	resolve = func(i int) Value {
		if out[i] == nil {
			it := &lv.items[i]
			if it.alias > 0 {
				out[i] = resolve(it.alias - 1)
			} else {
				out[i] = newThunk(it.thunk, env)
			}
		}
		return out[i]
	}
	for i := range lv.items {
		resolve(i)
	}
}

// newEnv makes an environment with n slots (at least one) in one
// allocation. Every word of an Env is a pointer or an interface word, so
// a block of pointers has the layout the collector needs.
//
// Each case writes up through its own fresh pointer, which the compiler
// knows is not nil. One store after the switch (e.up = up, a pointer
// store behind the write-barrier branch) was preceded by an explicit nil
// check, a load: on a fresh page that load maps the kernel's zero page,
// and the store right after it faults again to copy it, with a TLB
// flush across the other core (letEnv, formalsEnv and rec sets took a
// read fault and a write fault per fresh page, ~500 of modules' 10,600
// page faults).
func newEnv(up *Env, n int) *Env {
	switch n {
	case 0, 1:
		return &Env{up: up}
	case 2:
		return (*Env)(unsafe.Pointer(&struct {
			up *Env
			a  [2]Value
		}{up: up}))
	case 3:
		return (*Env)(unsafe.Pointer(&struct {
			up *Env
			a  [3]Value
		}{up: up}))
	case 4:
		return (*Env)(unsafe.Pointer(&struct {
			up *Env
			a  [4]Value
		}{up: up}))
	}
	w := make([]unsafe.Pointer, 1+n*int(valueSize/unsafe.Sizeof(unsafe.Pointer(nil))))
	w[0] = unsafe.Pointer(up)
	return (*Env)(unsafe.Pointer(&w[0]))
}

func (cp *compiler) compLambda(n *syntax.Lambda, sc *scope) *lambdaCode {
	lc := &lambdaCode{name: n.Name, arg: n.Arg, pos: n.Pos, atSlot: -1}
	if n.Formals == nil {
		inner := newScope(sc, []string{n.Arg})
		lc.simple = true
		lc.nslots = 1
		if il, ok := n.Body.(*syntax.Lambda); ok {
			lc.inner = cp.compLambda(il, inner)
			ic := lc.inner
			lc.body = func(ev *Evaluator, env *Env) Value { return &Lambda{fn: ic, env: env} }
			return lc
		}
		lc.body = cp.compile(n.Body, inner)
		lc.noCapture = !cp.capturesEnv(n.Body, inner)
		return lc
	}
	names := make([]string, len(n.Formals.List), len(n.Formals.List)+1)
	for i, f := range n.Formals.List {
		names[i] = f.Name
	}
	lc.nslots = len(n.Formals.List)
	if n.Arg != "" {
		lc.atSlot = lc.nslots
		names = append(names, n.Arg)
		lc.nslots++
	}
	inner := newScope(sc, names)
	lc.ellipsis = n.Formals.Ellipsis
	for i, f := range n.Formals.List {
		fc := formalCode{name: f.Name, slot: i, pos: f.Pos}
		if f.Default != nil {
			c := cp.comp(f.Default, inner)
			fc.def = delay(c, false)
			if c.cheap && c.sameLevelVar && c.sameSlot != lc.atSlot {
				// `{ a, b ? a }`: b gets a's cell when a is given, as in Nix
				// (not the @-argument: its slot is filled last)
				fc.alias = c.sameSlot + 1
			}
		}
		lc.formals = append(lc.formals, fc)
	}
	slices.SortFunc(lc.formals, func(a, b formalCode) int { return strings.Compare(a.name, b.name) })
	for i := range lc.formals {
		// the position in the code, not &f.Pos: a copy of the formal
		// that would keep its default's syntax tree
		fc := &lc.formals[i]
		fc.key = newKey(fc.name, &fc.pos)
	}
	lc.body = cp.compile(n.Body, inner)
	return lc
}

func (cp *compiler) compList(n *syntax.List, sc *scope) compiled {
	if len(n.Items) == 0 {
		return compiled{c: func(*Evaluator, *Env) Value { return &List{} }, cheap: true}
	}
	lv := newLazyVals(len(n.Items))
	for _, it := range n.Items {
		lv.add(lazyOf(cp.comp(it, sc), true))
	}
	if lv.sure() > 0 {
		// Not in one allocation with the thunks: a literal of calls or
		// sets is mostly taken apart (genericClosure's operator, a
		// concatMap), and its thunks, outliving it, would keep the whole
		// of it (genericClosure at 160,000: peak 0.87 to 0.94x Nix's).
		return compiled{c: func(ev *Evaluator, env *Env) Value {
			l := allocList(len(lv.items))
			lv.fill(ev, env, l.Items)
			return l
		}}
	}
	// Thunks only where a speculation fails (x + 1 of an unforced x):
	// room for as many in the list's allocation as this literal made the
	// last time, so a speculation that fails every time takes one
	// allocation, not two, and one that succeeds leaves no room unused.
	// (concatMap (x: [ x x (x + 1) ]) at 400,000: 97 to 94 ms.)
	var made atomic.Int32
	return compiled{c: func(ev *Evaluator, env *Env) Value {
		want := made.Load()
		l, pre := allocListThunks(len(lv.items), int(want))
		if n := int32(lv.fillWith(ev, env, l.Items, pre)); n != want {
			made.Store(n)
		}
		return l
	}}
}

type dynCode struct {
	name code
	val  func(*Evaluator, *Env) Value
	pos  syntax.Pos
}

// sortedDefs are defs in name order: defs itself when so already (the
// code keeps no definitions), else a sorted copy (sort.SliceStable's
// swapper and closure took a third of the garbage, as sort.Slice's for
// formals).
func sortedDefs(defs []*syntax.AttrDef) []*syntax.AttrDef {
	byName := func(a, b *syntax.AttrDef) int { return strings.Compare(a.Name, b.Name) }
	if slices.IsSortedFunc(defs, byName) {
		return defs
	}
	out := slices.Clone(defs)
	slices.SortStableFunc(out, byName)
	return out
}

func (cp *compiler) compAttrs(n *syntax.Attrs, sc *scope) compiled {
	defs := sortedDefs(n.Attrs)
	if len(defs) == 0 && len(n.Dynamic) == 0 {
		return compiled{c: func(*Evaluator, *Env) Value { return emptyAttrs }, cheap: true}
	}
	lv := newLazyVals(len(defs))
	for _, d := range defs {
		c, ok := cp.literal(d.E)
		if !ok {
			c = cp.comp(d.E, sc)
		}
		lv.add(lazyOf(c, true))
	}
	keys := defKeys(defs)
	dyns := cp.compDyns(n, sc)
	sure := lv.sure()
	nd := len(defs) // not defs: the code would keep the syntax tree
	return compiled{c: func(ev *Evaluator, env *Env) Value {
		var tmp [16]Value
		var vals []Value
		if nd <= len(tmp) {
			vals = tmp[:nd]
		} else {
			vals = make([]Value, nd)
		}
		a, pre := allocAttrsThunks(nd, sure)
		lv.fillWith(ev, env, vals, pre)
		for i, k := range keys {
			a.own()[i] = Attr{key: k, Val: vals[i]}
		}
		if len(dyns) > 0 {
			a = ev.addDynamic(a, dyns, env, env)
		}
		return a
	}}
}

// defKeys are the keys of the attributes defs define, shared by every set
// the definitions make.
func defKeys(defs []*syntax.AttrDef) []*attrKey {
	keys := make([]*attrKey, len(defs))
	// with their positions beside them, not &d.Pos: that keeps the
	// definition, and through it the syntax tree of its value, for as
	// long as the code lives (an imported file's as long as the
	// evaluation: 1.7 KB of each import-many file's 4.3)
	kp := make([]struct {
		k attrKey
		p syntax.Pos
	}, len(defs))
	for i, d := range defs {
		kp[i].p = d.Pos
		kp[i].k = attrKey{name: d.Name, pre: keyPre(d.Name), pos: &kp[i].p}
		keys[i] = &kp[i].k
	}
	return keys
}

func (cp *compiler) compDyns(n *syntax.Attrs, sc *scope) []dynCode {
	var dyns []dynCode
	for _, d := range n.Dynamic {
		dyns = append(dyns, dynCode{name: cp.compile(d.Name, sc), val: delay(cp.comp(d.E, sc), true), pos: d.Pos})
	}
	return dyns
}

func (ev *Evaluator) addDynamic(a *Attrs, dyns []dynCode, nameEnv, valEnv *Env) *Attrs {
	as := append([]Attr(nil), a.All()...)
	for di := range dyns {
		d := &dyns[di]
		nv := ev.Force(d.name(ev, nameEnv))
		if _, ok := nv.(Null); ok {
			continue
		}
		s, ok := nv.(*String)
		if !ok {
			ev.throwAt(d.pos, "value is %s while a string was expected", showType(nv))
		}
		for _, x := range as {
			if x.Name() == s.S {
				prev := "«unknown»"
				if x.Pos() != nil {
					prev = x.Pos().InMessage()
				}
				ev.throwAt(d.pos, "dynamic attribute '%s' already defined at %s", s.S, prev)
			}
		}
		as = append(as, mkAttrPos(s.S, &d.pos, d.val(ev, valEnv)))
	}
	sortAttrs(as)
	return mkAttrs(as)
}

// recScope builds the scope of a rec set or let: every static attribute
// gets a slot.
func recScope(defs []*syntax.AttrDef, sc *scope) *scope {
	names := make([]string, len(defs))
	for i, d := range defs {
		names[i] = d.Name
	}
	return newScope(sc, names)
}

// compBindings compiles the values of let / rec bindings: inherited ones
// in the outer scope, the rest in the recursive one.
func (cp *compiler) compBindings(defs []*syntax.AttrDef, sc, inner *scope) *lazyVals {
	lv := newLazyVals(len(defs))
	for _, d := range defs {
		if d.Inherited {
			it := lazyOf(cp.comp(d.E, sc), true)
			it.outer = true
			lv.add(it)
			continue
		}
		it := lazyOf(cp.comp(d.E, inner), false)
		if it.alias > 0 && !(defs[it.alias-1].Pos.Off < d.Pos.Off) {
			// C++ Nix fills the slots in the order the names were first
			// seen (about the source order: a rec set's slots here are
			// sorted), and a variable naming a slot not filled yet is a
			// thunk
			it.alias = 0
		}
		lv.add(it)
	}
	return lv
}

func (cp *compiler) compRecAttrs(n *syntax.Attrs, sc *scope) code {
	defs := sortedDefs(n.Attrs)
	inner := recScope(defs, sc)
	vals := cp.compBindings(defs, sc, inner)
	dyns := cp.compDyns(n, inner)
	keys := defKeys(defs)
	overrides := -1
	for i, d := range defs {
		if d.Name == "__overrides" {
			overrides = i
		}
	}
	if overrides >= 0 {
		// C++ Nix makes every value of such a set a thunk of its own
		// (they print as <CODE>, none shares another's cell)
		for i := range vals.items {
			if it := &vals.items[i]; !it.outer {
				if it.thunk == nil {
					it.thunk, it.direct = it.direct, nil
				}
				it.alias = 0
				// the overrides replace slots once the thunks are made,
				// and a thunk must read them then
				it.free = nil
			}
		}
	}
	nd := len(defs) // not defs: the code would keep the syntax tree
	return func(ev *Evaluator, env *Env) Value {
		e2 := newEnv(env, nd)
		vals.fill(ev, e2, e2.slots(nd))
		a := allocAttrs(nd)
		for i, v := range e2.slots(nd) {
			a.own()[i] = Attr{key: keys[i], Val: v}
		}
		if overrides >= 0 {
			ov := ev.forceAttrs(e2.get(overrides))
			for _, o := range ov.All() {
				if slot, ok := inner.slot(o.Name()); ok {
					*e2.slot(slot) = o.Val
				}
			}
			a = a.Update(ov)
		}
		if len(dyns) > 0 {
			a = ev.addDynamic(a, dyns, e2, e2)
		}
		return a
	}
}

func (cp *compiler) compLet(n *syntax.Let, sc *scope) code {
	defs := n.Attrs.Attrs
	inner := recScope(defs, sc)
	vals := cp.compBindings(defs, sc, inner)
	body := cp.compile(n.Body, inner)
	nd := len(defs) // not defs: the code would keep the syntax tree
	return func(ev *Evaluator, env *Env) Value {
		return body(ev, vals.letEnv(ev, env, nd))
	}
}

// letEnv is the environment of a let of n bindings, out of line: the
// let's code stays on the stack while its body runs, and filling took
// room in its frame.
//
//go:noinline
func (lv *lazyVals) letEnv(ev *Evaluator, env *Env, n int) *Env {
	e2 := newEnv(env, n)
	lv.fill(ev, e2, e2.slots(n))
	return e2
}

func (cp *compiler) compWith(n *syntax.With, sc *scope) code {
	attrs := delay(cp.comp(n.Attrs, sc), true)
	inner := &scope{parent: sc, with: true}
	body := cp.compile(n.Body, inner)
	return func(ev *Evaluator, env *Env) Value {
		e2 := newEnv(env, 1)
		e2.v0 = attrs(ev, env)
		return body(ev, e2)
	}
}

// attrNames compiles an attribute path: each element's name if static,
// else the code evaluating it.
func (cp *compiler) attrNames(path []syntax.AttrName, sc *scope) ([]string, []code) {
	names := make([]string, len(path))
	dyn := make([]code, len(path))
	for i, p := range path {
		if p.Dyn != nil {
			dyn[i] = cp.compile(p.Dyn, sc)
		} else {
			names[i] = p.Name
		}
	}
	return names, dyn
}

func (ev *Evaluator) attrName(names []string, dyn []code, i int, env *Env, pos syntax.Pos) string {
	if dyn[i] == nil {
		return names[i]
	}
	v := ev.Force(dyn[i](ev, env))
	s, ok := v.(*String)
	if !ok {
		ev.throwAt(pos, "value is %s while a string was expected", showType(v))
	}
	return s.S
}

// selectSite is a selection of one static name.
type selectSite struct {
	e    code
	name string
	pos  syntax.Pos
	// one-entry inline cache: a site often selects from the same set
	// again (values of a set never change, so the entry stays valid)
	lastA *Attrs
	lastX *Attr
	hint  attrHint // for other sets
}

// lookup is the selection from a set other than the cached one, out of
// line: the selection's code is on the stack while the set is forced,
// and the search took room in its frame.
//
//go:noinline
func (s *selectSite) lookup(ev *Evaluator, a *Attrs) Value {
	if x := a.lookupHinted(s.name, &s.hint); x != nil {
		s.lastA, s.lastX = a, x
		return ev.selectedValue(x, s.name)
	}
	ev.missingAttr(a, s.name, s.pos)
	return nil
}

func (cp *compiler) compSelect(n *syntax.Select, sc *scope) code {
	e := cp.compile(n.E, sc)
	names, dyn := cp.attrNames(n.Path, sc)
	var def code
	if n.Or != nil {
		def = cp.compile(n.Or, sc)
	}
	return selectCode(e, names, dyn, def, n.Pos)
}

// selectCode is the code of e.names (dyn: the names' code where they
// are not static) or def.
func selectCode(e code, names []string, dyn []code, def code, pos syntax.Pos) code {
	if len(names) == 1 && dyn[0] == nil && def == nil {
		// behind one pointer, as call1Site
		s := &selectSite{e: e, name: names[0], pos: pos}
		return func(ev *Evaluator, env *Env) Value {
			a := ev.forceAttrsAt(s.e(ev, env), s.pos)
			if a == s.lastA {
				if t, ok := s.lastX.Val.(*Thunk); ok && !t.done() {
					return ev.forceSelected(t, s.lastX, s.name)
				}
				return s.lastX.Val
			}
			return s.lookup(ev, a)
		}
	}
	// per-element inline caches, as in the single-name case
	lastA := make([]*Attrs, len(names))
	lastX := make([]*Attr, len(names))
	hints := make([]attrHint, len(names))
	// the path as C++ Nix's trace lines show it; "" (no trace lines) with
	// computed names past the first
	path := names[0]
	for i := 1; i < len(names); i++ {
		if dyn[i] != nil {
			path = ""
			break
		}
		path += "." + names[i]
	}
	if len(names) > 1 && dyn[0] != nil {
		path = ""
	}
	return func(ev *Evaluator, env *Env) Value {
		v := e(ev, env)
		var prev *Attr // the attribute the path went through last
		for i := range names {
			name := names[i]
			if dyn[i] != nil {
				// the name is computed before the set is forced, as in Nix
				name = ev.attrName(names, dyn, i, env, pos)
			}
			if prev != nil && path != "" {
				// forcing the set on the way and looking the name up in it
				// are inside the selection in Nix
				if t, ok := v.(*Thunk); ok {
					if t.done() {
						v = t.v
					} else {
						v = ev.forceSelected(t, prev, path)
					}
				}
				if _, ok := v.(*Attrs); !ok && def == nil {
					ev.raiseInSelection(prev, path, func() { ev.notA(v, "a set", pos) })
				}
			}
			var a *Attrs
			if def != nil {
				var ok bool
				if a, ok = ev.Force(v).(*Attrs); !ok {
					return def(ev, env)
				}
			} else {
				a = ev.forceAttrsAt(v, pos)
			}
			if dyn[i] == nil && a == lastA[i] {
				v = lastX[i].Val
				prev = lastX[i]
				continue
			}
			var x *Attr
			if dyn[i] == nil {
				x = a.lookupHinted(name, &hints[i])
			} else {
				x = a.Lookup(name)
			}
			if x == nil {
				if def != nil {
					return def(ev, env)
				}
				if prev != nil && path != "" {
					ev.raiseInSelection(prev, path, func() { ev.missingAttr(a, name, pos) })
				} else {
					ev.missingAttr(a, name, pos)
				}
			}
			if dyn[i] == nil {
				lastA[i], lastX[i] = a, x
			}
			v = x.Val
			prev = x
		}
		switch {
		case path != "":
			return ev.selectedValue(prev, path)
		case len(names) == 1: // one computed name
			return ev.selectedValue(prev, prev.Name())
		}
		return v
	}
}

func (ev *Evaluator) missingAttr(a *Attrs, name string, pos syntax.Pos) {
	panic(&Error{Kind: ErrEval, Msg: fmt.Sprintf("attribute '%s' missing", name), Pos: pos, Suggest: suggestNames(attrNames(a), name)})
}

func attrNames(a *Attrs) []string {
	all := a.All()
	names := make([]string, len(all))
	for i := range all {
		names[i] = all[i].Name()
	}
	return names
}

func (cp *compiler) compHasAttr(n *syntax.HasAttr, sc *scope) code {
	e := cp.compile(n.E, sc)
	names, dyn := cp.attrNames(n.Path, sc)
	pos := n.Pos
	hints := make([]attrHint, len(names))
	return func(ev *Evaluator, env *Env) Value {
		v := e(ev, env)
		for i := range names {
			a, ok := ev.Force(v).(*Attrs)
			if !ok {
				return Bool(false)
			}
			var x *Attr
			if dyn[i] == nil {
				x = a.lookupHinted(names[i], &hints[i])
			} else {
				x = a.Lookup(ev.attrName(names, dyn, i, env, pos))
			}
			if x == nil {
				return Bool(false)
			}
			v = x.Val
		}
		return Bool(true)
	}
}

// call1Site is a call of one argument.
type call1Site struct {
	fn, raw0 code
	a0       func(*Evaluator, *Env) Value
	pos      syntax.Pos
}

// call2Site is a call of two arguments.
type call2Site struct {
	fn     code
	a0, a1 func(*Evaluator, *Env) Value
	pos    syntax.Pos
}

// call is the call of f other than a curried lambda, out of line: the
// arguments of call2 would be room in the frame of the site's code.
//
//go:noinline
func (s *call2Site) call(ev *Evaluator, env *Env, f Value) Value {
	return ev.call2(f, s.a0(ev, env), s.a1(ev, env), s.pos)
}

func (cp *compiler) compCall(n *syntax.Call, sc *scope) code {
	fn := cp.compile(n.Fn, sc)
	args := make([]func(*Evaluator, *Env) Value, len(n.Args))
	var raw0 code
	for i, a := range n.Args {
		c := cp.comp(a, sc)
		args[i] = delay(c, true)
		if i == 0 {
			raw0 = c.c
		}
	}
	pos := n.Pos
	if len(args) == 1 {
		// what the code needs behind one pointer: captured one by one,
		// each would have a slot of its own in the closure's frame, on
		// the stack once per level of a recursion
		s := &call1Site{fn: fn, a0: args[0], raw0: raw0, pos: pos}
		return func(ev *Evaluator, env *Env) Value {
			f := ev.Force(s.fn(ev, env))
			ev.curPos = s.pos
			if l, ok := f.(*Lambda); ok {
				if !l.fn.simple {
					// a set pattern forces its argument right away: evaluate
					// it directly instead of allocating a thunk
					return ev.callLambda(l, ev.Force(s.raw0(ev, env)), s.pos)
				}
				// not through call: one frame less per level of a
				// recursion, whose stack is copied at every doubling
				return ev.callCode(l.fn, l.env, s.a0(ev, env), s.pos)
			}
			return ev.call(f, s.a0(ev, env), s.pos)
		}
	}
	if len(args) == 2 {
		s := &call2Site{fn: fn, a0: args[0], a1: args[1], pos: pos}
		return func(ev *Evaluator, env *Env) Value {
			f := ev.Force(s.fn(ev, env))
			ev.curPos = s.pos
			if l, ok := f.(*Lambda); ok && l.fn.simple && l.fn.inner != nil {
				// one frame less, as above
				a := s.a0(ev, env)
				if l.fn.inner.simple {
					return ev.call2Simple(l, a, s.a1(ev, env), s.pos)
				}
				return ev.call2Formals(l, a, s.a1(ev, env), s.pos)
			}
			return s.call(ev, env, f)
		}
	}
	return func(ev *Evaluator, env *Env) Value {
		f := ev.Force(fn(ev, env))
		if p, ok := f.(*PrimOp); ok && p.Arity == len(args) {
			n := len(ev.args)
			for _, a := range args {
				v := a(ev, env)
				ev.args = append(ev.args, v)
			}
			ev.curPos = pos
			return ev.callPrimOpStack(p, n)
		}
		for i, a := range args {
			ev.curPos = pos
			r := ev.call(f, a(ev, env), pos)
			if i < len(args)-1 {
				f = ev.Force(r)
			} else {
				return r
			}
		}
		return nil
	}
}

func (cp *compiler) compInterp(n *syntax.Interp, sc *scope) code {
	parts := make([]code, len(n.Parts))
	statics := make([]string, len(n.Parts))
	isStatic := make([]bool, len(n.Parts))
	// where each part's ${ begins: C++ Nix reports its coercion there
	at := make([]syntax.Pos, len(n.Parts))
	for i, p := range n.Parts {
		at[i] = n.Pos
		if i < len(n.At) && n.At[i].IsValid() {
			at[i] = n.At[i]
		}
		switch p := p.(type) {
		case *syntax.Str:
			statics[i], isStatic[i] = p.V, true
		case *syntax.Interp:
			if n.IsPath && len(p.Parts) == 1 {
				parts[i] = cp.compile(p.Parts[0], sc)
				at[i] = p.Pos
				continue
			}
			parts[i] = cp.compile(p, sc)
		default:
			parts[i] = cp.compile(p, sc)
		}
	}
	pos := n.Pos
	if n.IsPath {
		first := cp.compile(n.Parts[0], sc)
		slash := strings.HasSuffix(n.Parts[0].(*syntax.Path).V, "/")
		return func(ev *Evaluator, env *Env) Value {
			var b strings.Builder
			b.WriteString(string(ev.Force(first(ev, env)).(Path)))
			if slash {
				b.WriteByte('/')
			}
			for i := 1; i < len(parts); i++ {
				if isStatic[i] {
					b.WriteString(statics[i])
					continue
				}
				s := ev.coerceToString(parts[i](ev, env), at[i], false, false)
				if len(s.Ctx()) > 0 {
					ev.throwAt(pos, "a string that refers to a store path cannot be appended to a path")
				}
				b.WriteString(s.S)
			}
			return Path(canonPath(b.String()))
		}
	}
	staticLen := 0
	for _, s := range statics {
		staticLen += len(s)
	}
	if len(parts) == 1 && !isStatic[0] {
		// "${x}": x's string itself, not a copy of it
		p, at := parts[0], at[0]
		return func(ev *Evaluator, env *Env) Value {
			return ev.coerceToString(p(ev, env), at, false, true)
		}
	}
	return func(ev *Evaluator, env *Env) Value {
		var tmp [8]*String
		dyn := tmp[:0]
		n := staticLen
		var ctx Context
		for i, p := range parts {
			if !isStatic[i] {
				s := ev.coerceToString(p(ev, env), at[i], false, true)
				dyn = append(dyn, s)
				n += len(s.S)
				ctx = MergeContext(ctx, s.Ctx())
			}
		}
		var b strings.Builder
		b.Grow(n)
		j := 0
		for i := range parts {
			if isStatic[i] {
				b.WriteString(statics[i])
			} else {
				b.WriteString(dyn[j].S)
				j++
			}
		}
		return StrCtx(b.String(), ctx)
	}
}

type binSite struct {
	l, r code
	pos  syntax.Pos // where l begins: C++ Nix's position of the operator
	rpos syntax.Pos // where r begins, for +'s errors about it
}

// addInt and addRest are + other than of two integers, out of line: the
// arguments of ev.add, and what they are made of, would be room in the
// frame of the operator's code.
//
//go:noinline
func (s *binSite) addInt(ev *Evaluator, a Int, b Value) Value { return ev.add(a, b, s.pos, s.rpos) }

// arith, equal and lessThan are the operators other than on two
// integers, out of line as addInt.
//
//go:noinline
func (s *binSite) arith(ev *Evaluator, op byte, a, b Value) Value { return ev.arith(op, a, b, s.pos) }

//go:noinline
func (s *binSite) equal(ev *Evaluator, a, b Value) bool { return ev.Equal(a, b, s.pos) }

//go:noinline
func (s *binSite) lessThan(ev *Evaluator, a, b Value) bool { return ev.lessThan(a, b, s.pos) }

// concat2 is a ++ b, out of line as addInt.
//
//go:noinline
func concat2(a, b *List) Value {
	if len(a.Items) == 0 {
		return b
	}
	if len(b.Items) == 0 {
		return a
	}
	if n := len(a.Items) + len(b.Items); n < len(listAllocs) {
		l := allocList(n)
		copy(l.Items[copy(l.Items, a.Items):], b.Items)
		return l
	}
	out := make([]Value, 0, len(a.Items)+len(b.Items))
	prefault(out)
	out = appendItems(out, a.Items)
	return &List{Items: appendItems(out, b.Items)}
}

// addRest is + of an a that is not an integer, r not evaluated yet.
//
//go:noinline
func (s *binSite) addRest(ev *Evaluator, env *Env, a Value) Value {
	return ev.add(a, s.r(ev, env), s.pos, s.rpos)
}

func (cp *compiler) compBinary(n *syntax.Binary, sc *scope) code {
	if n.Op == "++" && (isConcat(n.L) || isConcat(n.R)) {
		return cp.compConcatChain(n, sc)
	}
	return binCode(n.Op, cp.compile(n.L, sc), cp.compile(n.R, sc), n.Pos, n.RPos)
}

// binCode is the code of l op r.
func binCode(op string, l, r code, pos, rpos syntax.Pos) code {
	// behind one pointer, as call1Site (the operators recursion passes
	// through; the rest capture l, r and pos one by one)
	s := &binSite{l: l, r: r, pos: pos, rpos: rpos}
	switch op {
	case "+":
		return func(ev *Evaluator, env *Env) Value {
			a := ev.Force(s.l(ev, env))
			if x, ok := a.(Int); ok {
				b := ev.Force(s.r(ev, env))
				if y, ok := b.(Int); ok {
					return ev.boxInt(x + y)
				}
				return s.addInt(ev, x, b)
			}
			return s.addRest(ev, env, a)
		}
	case "-":
		return func(ev *Evaluator, env *Env) Value {
			a, b := ev.Force(s.l(ev, env)), ev.Force(s.r(ev, env))
			if x, ok := a.(Int); ok {
				if y, ok := b.(Int); ok {
					return ev.boxInt(x - y)
				}
			}
			return s.arith(ev, '-', a, b)
		}
	case "*":
		return func(ev *Evaluator, env *Env) Value { return ev.arith('*', l(ev, env), r(ev, env), pos) }
	case "/":
		return func(ev *Evaluator, env *Env) Value { return ev.arith('/', l(ev, env), r(ev, env), pos) }
	case "==":
		return func(ev *Evaluator, env *Env) Value { return Bool(s.equal(ev, s.l(ev, env), s.r(ev, env))) }
	case "!=":
		return func(ev *Evaluator, env *Env) Value { return Bool(!s.equal(ev, s.l(ev, env), s.r(ev, env))) }
	case "<":
		return func(ev *Evaluator, env *Env) Value {
			a, b := ev.Force(s.l(ev, env)), ev.Force(s.r(ev, env))
			if x, ok := a.(Int); ok {
				if y, ok := b.(Int); ok {
					return Bool(x < y)
				}
			}
			return Bool(s.lessThan(ev, a, b))
		}
	case ">":
		return func(ev *Evaluator, env *Env) Value { return Bool(ev.lessThan(r(ev, env), l(ev, env), pos)) }
	case "<=":
		return func(ev *Evaluator, env *Env) Value { return Bool(!ev.lessThan(r(ev, env), l(ev, env), pos)) }
	case ">=":
		return func(ev *Evaluator, env *Env) Value { return Bool(!ev.lessThan(l(ev, env), r(ev, env), pos)) }
	case "&&":
		return func(ev *Evaluator, env *Env) Value {
			return Bool(ev.forceBool(s.l(ev, env), s.pos) && ev.forceBool(s.r(ev, env), s.pos))
		}
	case "||":
		return func(ev *Evaluator, env *Env) Value {
			return Bool(ev.forceBool(s.l(ev, env), s.pos) || ev.forceBool(s.r(ev, env), s.pos))
		}
	case "->":
		return func(ev *Evaluator, env *Env) Value {
			return Bool(!ev.forceBool(l(ev, env), pos) || ev.forceBool(r(ev, env), pos))
		}
	case "//":
		// (its operands are forced without a position in C++ Nix)
		return func(ev *Evaluator, env *Env) Value {
			a := ev.forceAttrsAt(s.l(ev, env), syntax.Pos{})
			b := ev.forceAttrsAt(s.r(ev, env), syntax.Pos{})
			return a.Update(b)
		}
	case "++":
		return func(ev *Evaluator, env *Env) Value {
			a := ev.forceListAt(s.l(ev, env), s.pos)
			b := ev.forceListAt(s.r(ev, env), s.pos)
			if len(a.Items) > 0 && len(b.Items) > 0 {
				ev.stepItems(len(a.Items) + len(b.Items))
			}
			return concat2(a, b)
		}
	}
	panic(&Error{Kind: ErrEval, Msg: "internal error: unknown operator " + op, Pos: pos})
}

func (lc *lambdaCode) argName() string { return lc.arg }

func isConcat(n syntax.Node) bool {
	b, ok := n.(*syntax.Binary)
	return ok && b.Op == "++"
}

// compConcatChain compiles a chain a ++ b ++ c as one concatenation:
// nested, each ++ copied its right side into a list that was garbage at
// once (a ++ b ++ a copied b and a twice). The operands are forced in
// the order the nested form forces them, each with the position of its
// own ++.
func (cp *compiler) compConcatChain(n *syntax.Binary, sc *scope) code {
	var parts []code
	var poss []syntax.Pos
	var walk func(e syntax.Node, pos syntax.Pos)
	walk = func(e syntax.Node, pos syntax.Pos) {
		if b, ok := e.(*syntax.Binary); ok && b.Op == "++" {
			walk(b.L, b.Pos)
			walk(b.R, b.Pos)
			return
		}
		parts = append(parts, cp.compile(e, sc))
		poss = append(poss, pos)
	}
	walk(n, n.Pos)
	return func(ev *Evaluator, env *Env) Value {
		var small [8]*List
		lists := small[:0]
		if len(parts) > len(small) {
			lists = make([]*List, 0, len(parts))
		}
		total, nonEmpty := 0, 0
		var last *List
		for i, p := range parts {
			l := ev.forceListAt(p(ev, env), poss[i])
			lists = append(lists, l)
			if len(l.Items) > 0 {
				total += len(l.Items)
				nonEmpty++
				last = l
			}
		}
		switch nonEmpty {
		case 0:
			return lists[len(lists)-1] // as nested ++ of empty lists gives
		case 1:
			return last
		}
		out := make([]Value, 0, total)
		prefault(out)
		for _, l := range lists {
			out = appendItems(out, l.Items)
		}
		return &List{Items: out}
	}
}
