package eval

import (
	"strings"
	"time"

	"github.com/tvix-go/tvix/nix/storepath"
)

// globalNames are builtins also reachable without `builtins.`.
var globalNames = []string{"abort", "baseNameOf", "derivation", "derivationStrict", "dirOf", "fetchGit",
	"fetchMercurial", "fetchTarball", "fetchTree", "fromTOML", "import", "isNull", "map", "placeholder",
	"removeAttrs", "scopedImport", "throw", "toString"}

// storeBuiltins need a store; the glue package installs them. Until then
// they fail with a clear message.
var storeBuiltins = map[string]int{"derivation": 1, "derivationStrict": 1, "toFile": 2, "path": 1, "filterSource": 2,
	"storePath": 1, "fetchurl": 1, "fetchTarball": 1, "fetchGit": 1, "fetchMercurial": 1, "fetchTree": 1}

// registerFunc adds one builtin; each register* function adds the
// builtins of one domain with it.
type registerFunc func(name string, arity int, fn PrimOpFn)

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
	// No two of these register the same name; only the store stubs above
	// are meant to be replaced (by Options.Builtins, below).
	registerControl(reg)
	registerTypes(reg)
	registerArithmetic(reg)
	registerAttrs(reg)
	registerLists(reg)
	registerPaths(reg)
	registerHashing(reg)
	registerStrings(reg)
	registerVersions(reg)
	registerContext(reg)
	registerData(reg)
	ev.lessThanOp, _ = bs["lessThan"].(*PrimOp)
	bs["true"] = Bool(true)
	bs["false"] = Bool(false)
	bs["null"] = Null{}
	bs["currentSystem"] = Str(ev.opts.CurrentSystem)
	bs["currentTime"] = Int(time.Now().Unix())
	bs["langVersion"] = Int(6)
	bs["nixVersion"] = Str("2.8.0")
	bs["storeDir"] = Str(storepath.StoreDir)
	bs["nixPath"] = ev.nixPathValue()
	for k, v := range ev.opts.Builtins {
		bs[k] = v
	}
	as := make([]Attr, 0, len(bs)+1)
	for k, v := range bs {
		as = append(as, MkAttr(k, v))
	}
	// builtins.builtins is the set itself; patch after building.
	as = append(as, MkAttr("builtins", nil))
	ev.builtins = NewAttrs(as)
	ev.builtins.Lookup("builtins").Val = ev.builtins

	consts := map[string]Value{}
	for _, a := range ev.builtins.All() {
		consts["__"+a.Name()] = a.Val
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
			return ev.Force(ev.evalSource(newSource("<nix/"+n+".nix>", s) /* see derivationNixName */, "/", nil))
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
	*ev.builtins = *NewAttrs(append(append([]Attr(nil), ev.builtins.All()...), MkAttr(name, nil)))
	return ev.builtins.Lookup(name)
}

func (ev *Evaluator) nixPathValue() Value {
	var items []Value
	for _, e := range ev.opts.NixPath {
		prefix, p := "", e
		if i := strings.IndexByte(e, '='); i >= 0 {
			prefix, p = e[:i], e[i+1:]
		}
		items = append(items, NewAttrs([]Attr{MkAttr("path", Str(p)), MkAttr("prefix", Str(prefix))}))
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
