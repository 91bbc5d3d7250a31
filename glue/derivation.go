package glue

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/tvix-go/tvix/eval"
	"github.com/tvix-go/tvix/eval/syntax"
	"github.com/tvix-go/tvix/nix/derivation"
	"github.com/tvix-go/tvix/nix/nixbase32"
	"github.com/tvix-go/tvix/nix/nixhash"
	"github.com/tvix-go/tvix/nix/storepath"
)

// noCtx forces a string that must not refer to store paths.
func noCtx(ev *eval.Evaluator, v eval.Value) string {
	s := ev.ForceString(v)
	if len(s.Ctx()) > 0 {
		ev.Throwf("the string '%s' is not allowed to refer to a store path (such as '%s')", s.S, s.Ctx()[0])
	}
	return s.S
}

// outputSet collects output names as C++ Nix's handleOutputs does.
func outputSet(ev *eval.Evaluator, names []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, n := range names {
		if seen[n] {
			ev.Throwf("duplicate derivation output '%s'", n)
		}
		if n == "drv" {
			ev.Throwf("invalid derivation output name 'drv'")
		}
		seen[n] = true
		out = append(out, n)
	}
	if len(out) == 0 {
		ev.Throwf("derivation cannot have an empty set of outputs")
	}
	return out
}

func hashMode(ev *eval.Evaluator, s string) string {
	if s != "recursive" && s != "flat" {
		ev.Throwf("invalid value '%s' for 'outputHashMode' attribute", s)
	}
	return s
}

// drvBuilder collects a derivation's attributes. It lives on the heap and
// the collecting functions are kept apart from the rest of
// derivationStrict, so that the frames on the recursion path (an
// attribute forcing another derivation, 10,000 deep in a chain) stay
// small: the Go stack, not the heap, is what such chains fill. For the
// same reason it holds plain slices, not a derivation.Derivation (whose
// maps cost ~1 KB): in a chain every link's builder is alive at once,
// and the derivation is made only when the attributes are all in.
type drvBuilder struct {
	drvName                    string
	attrs                      []eval.Attr // while collecting
	cur                        string      // the attribute being coerced, for error traces
	structured, ignoreNulls    bool
	env                        []envEntry
	args                       []string
	builder, system            string
	ctx                        ctxSet
	outputs                    []string
	outputHash, outputHashAlgo *string
	mode                       string
	outs                       []string      // finishDerivation's: the input derivations' output names
	refs                       []string      // finishDerivation's: the references, read-only
	js                         *bytes.Buffer // __structuredAttrs only
	toJSON                     eval.Value
	namePos                    syntax.Pos
}

type envEntry struct{ key, val string }

func (g *Glue) derivationStrict(ev *eval.Evaluator, args []eval.Value) eval.Value {
	if ev.StackDepth() >= stackChunkDepth {
		return g.derivationStrictOnNewStack(ev, args[0])
	}
	return g.finishDerivation(ev, collectDerivation(ev, args[0]))
}

// stackChunkDepth is how much deeper than where its goroutine's stack
// began (eval.Evaluator.StackDepth; a link of a dependency chain is about
// 4 deeper than the one before, ~2 KB of Go stack) derivationStrict
// moves to a fresh stack: 10,000 chained derivations then use ~40 stacks
// of ~0.5 MB instead of one of 32 MB.
const stackChunkDepth = 1000

//go:noinline
func (g *Glue) derivationStrictOnNewStack(ev *eval.Evaluator, arg eval.Value) eval.Value {
	return ev.OnNewStack(func() eval.Value {
		return g.finishDerivation(ev, collectDerivation(ev, arg))
	})
}

// collectDerivation reads derivationStrict's argument into a builder.
// It is on the stack while the attributes are coerced (which may force
// other derivations, once per link of a dependency chain), so its frame
// is kept small: the set-up and the end are functions of their own.
//
//go:noinline
func collectDerivation(ev *eval.Evaluator, v eval.Value) *drvBuilder {
	b := newDrvBuilder(ev, ev.ForceAttrs(v))
	defer b.traceAttr()
	for i := range b.attrs {
		if a := &b.attrs[i]; a.Name() != "__ignoreNulls" {
			b.add(ev, a)
		}
	}
	b.cur, b.attrs = "", nil
	b.finishCollect()
	return b
}

//go:noinline
func newDrvBuilder(ev *eval.Evaluator, attrs *eval.Attrs) *drvBuilder {
	nameV, ok := attrs.Get("name")
	if !ok {
		ev.Throwf("attribute 'name' missing for call to 'derivationStrict'")
	}
	b := drvBuilders.Get().(*drvBuilder)
	b.drvName, b.outputs, b.attrs = noCtx(ev, nameV), defaultOutputs, attrs.All()
	if cap(b.env) < attrs.Len() {
		b.env = make([]envEntry, 0, attrs.Len())
	}
	if v, ok := attrs.Get("__structuredAttrs"); ok {
		b.structured = ev.ForceBool(v)
	}
	if v, ok := attrs.Get("__ignoreNulls"); ok {
		b.ignoreNulls = ev.ForceBool(v)
	}
	if b.structured {
		b.toJSON, _ = ev.Builtins().Get("toJSON")
		b.js = new(bytes.Buffer)
		b.js.WriteByte('{')
	}
	if p := attrs.Lookup("name").Pos(); p != nil {
		b.namePos = *p
	}
	return b
}

// drvPathAttr is the key of every derivationStrict result's drvPath.
var drvPathAttr = eval.MkAttr("drvPath", nil)

// defaultOutputs is the outputs of a derivation that names none (shared:
// never written to).
var defaultOutputs = []string{"out"}

// drvBuilders recycles builders with their buffers: every derivation
// needs one (~300 bytes, its env list and context elements), but only
// while derivationStrict runs. finishDerivation hands it back, even when
// it fails (nothing refers to the builder then); a builder whose
// attributes fail to evaluate is left to the collector.
var drvBuilders = sync.Pool{New: func() any { return new(drvBuilder) }}

// recycleBuilderMax is the most entries a recycled builder's buffers may
// have room for (as recycleScratchMax).
const recycleBuilderMax = 256

func recycleBuilder(b *drvBuilder) {
	if cap(b.env) > recycleBuilderMax || cap(b.ctx.elems) > 4*recycleBuilderMax || cap(b.outs) > recycleBuilderMax || cap(b.refs) > recycleBuilderMax {
		return
	}
	// keeps no strings of the evaluation alive
	clear(b.env)
	clear(b.ctx.elems)
	clear(b.outs)
	clear(b.refs)
	*b = drvBuilder{env: b.env[:0], ctx: ctxSet{elems: b.ctx.elems[:0]}, outs: b.outs[:0], refs: b.refs[:0]}
	drvBuilders.Put(b)
}

// ctxSet collects the context elements of a derivation's attributes, as
// eval.ContextUnion does (unsorted, duplicates squeezed out when the
// buffer doubles), in a buffer the builder keeps: merging each
// attribute's context into a new sorted one allocated for every
// attribute with a context.
type ctxSet struct {
	elems []string
	clean int // elems[:clean] is sorted and unique
}

func (c *ctxSet) add(ctx eval.Context) {
	if len(ctx) == 0 {
		return
	}
	c.elems = append(c.elems, ctx...)
	if len(c.elems) > 2*c.clean+64 {
		c.squeeze()
	}
}

func (c *ctxSet) squeeze() {
	slices.Sort(c.elems)
	c.elems = slices.Compact(c.elems)
	c.clean = len(c.elems)
}

// sorted returns the elements sorted and unique.
func (c *ctxSet) sorted() []string {
	if c.clean != len(c.elems) {
		c.squeeze()
	}
	return c.elems
}

//go:noinline
func (b *drvBuilder) finishCollect() {
	if b.structured {
		b.js.WriteByte('}')
		b.env = append(b.env, envEntry{"__json", b.js.String()})
		b.js = nil
	}
}

func (b *drvBuilder) add(ev *eval.Evaluator, a *eval.Attr) {
	b.cur = a.Name()
	switch {
	case b.ignoreNulls, b.structured, a.Name() == "args", a.Name() == "__contentAddressed", a.Name() == "__impure":
		b.addSlow(ev, a)
	default:
		// The common case stays in a small frame: coercing an attribute
		// may force another derivation (a chain of dependencies recurses
		// through here once per derivation, so the goroutine stack grows
		// by this frame each time).
		s := ev.CoerceToStringMore(a.Val, true)
		b.setEnv(ev, a.Name(), s)
	}
}

// setEnv records an environment entry, and what it means for the
// derivation.
//
//go:noinline
func (b *drvBuilder) setEnv(ev *eval.Evaluator, key string, s *eval.String) {
	b.ctx.add(s.Ctx())
	b.env = append(b.env, envEntry{key, s.S})
	switch key {
	case "builder":
		b.builder = s.S
	case "system":
		b.system = s.S
	case "outputHash":
		b.outputHash = &s.S
	case "outputHashAlgo":
		b.outputHashAlgo = &s.S
	case "outputHashMode":
		b.mode = hashMode(ev, s.S)
	case "outputs":
		b.outputs = outputSet(ev, strings.FieldsFunc(s.S, func(r rune) bool {
			return r == ' ' || r == '\t' || r == '\n' || r == '\r'
		}))
	}
}

// addSlow is add for structured attributes, nulls to ignore and the
// attributes with a meaning of their own.
//
//go:noinline
func (b *drvBuilder) addSlow(ev *eval.Evaluator, a *eval.Attr) {
	key := a.Name()
	if b.ignoreNulls {
		if _, isNull := ev.Force(a.Val).(eval.Null); isNull {
			return
		}
	}
	switch {
	case key == "__contentAddressed":
		if ev.ForceBool(a.Val) {
			ev.Throwf("experimental Nix feature 'ca-derivations' is disabled; use '--extra-experimental-features ca-derivations' to override")
		}
	case key == "__impure":
		// Nix 2.8 reads the flag as a Boolean, then refuses impure
		// derivations without the experimental feature.
		if ev.ForceBool(a.Val) {
			ev.Throwf("experimental Nix feature 'impure-derivations' is disabled; use '--extra-experimental-features impure-derivations' to override")
		}
	case key == "args":
		items := ev.ForceList(a.Val).Items
		if len(items) > 0 {
			b.args = make([]string, 0, len(items))
		}
		for _, it := range items {
			s := ev.CoerceToStringMore(it, true)
			b.ctx.add(s.Ctx())
			b.args = append(b.args, s.S)
		}
	case b.structured:
		if key == "__structuredAttrs" {
			return
		}
		if b.js.Len() > 1 {
			b.js.WriteByte(',')
		}
		k := ev.ForceString(ev.Call1(b.toJSON, eval.Str(key)))
		v := ev.ForceString(ev.Call1(b.toJSON, a.Val))
		b.js.WriteString(k.S)
		b.js.WriteByte(':')
		b.js.WriteString(v.S)
		b.ctx.add(v.Ctx())
		switch key {
		case "builder":
			s := ev.ForceString(a.Val)
			b.ctx.add(s.Ctx())
			b.builder = s.S
		case "system":
			b.system = noCtx(ev, a.Val)
		case "outputHash":
			s := noCtx(ev, a.Val)
			b.outputHash = &s
		case "outputHashAlgo":
			s := noCtx(ev, a.Val)
			b.outputHashAlgo = &s
		case "outputHashMode":
			b.mode = hashMode(ev, noCtx(ev, a.Val))
		case "outputs":
			var names []string
			for _, it := range ev.ForceList(a.Val).Items {
				names = append(names, noCtx(ev, it))
			}
			b.outputs = outputSet(ev, names)
		}
	default:
		b.setEnv(ev, key, ev.CoerceToStringMore(a.Val, true))
	}
}

// finishDerivation computes the inputs and paths of a collected
// derivation, writes it and returns derivationStrict's result.
//
//go:noinline
func (g *Glue) finishDerivation(ev *eval.Evaluator, b *drvBuilder) eval.Value {
	drvName, outputs, outputHash, outputHashAlgo, mode := b.drvName, b.outputs, b.outputHash, b.outputHashAlgo, b.mode
	ctx := b.ctx.sorted()
	// Deferred before d's recycling, so it runs after it: d's input lists
	// are in the builder's array.
	defer recycleBuilder(b)
	var d *derivation.Derivation
	// The output names of the input derivations share one array: the
	// builder's, recycled with it, unless the derivation is kept.
	outs := b.outs[:0]
	if g.KeepDerivations {
		d = &derivation.Derivation{
			Outputs:          make(map[string]derivation.Output, len(outputs)),
			InputDerivations: map[string][]string{},
			Env:              make(map[string]string, len(b.env)),
		}
		outs = nil
	} else {
		d = scratchDrvs.Get().(*derivation.Derivation)
		defer recycleDrv(d)
	}
	if cap(outs) < len(ctx) {
		outs = make([]string, 0, len(ctx))
	}
	d.System, d.Builder, d.Args = b.system, b.builder, b.args
	for _, e := range b.env {
		d.Env[e.key] = e.val
	}
	for _, s := range ctx {
		switch e := eval.ParseContextElem(s); e.Kind {
		case eval.CtxAllOutputs:
			// A drvPath string needs the whole closure of the .drv, as C++
			// Nix computes it: every path goes to the sources, every .drv
			// also to the inputs with all its outputs.
			paths, err := g.closure(e.Path)
			if err != nil {
				ev.Throwf("%v", err)
			}
			for _, p := range paths {
				d.InputSources = append(d.InputSources, p)
				if strings.HasSuffix(p, ".drv") {
					in, err := g.readDrv(p)
					if err != nil {
						ev.Throwf("%v", err)
					}
					for i := range in.nOut {
						name, _ := in.output(i)
						d.InputDerivations[p] = append(d.InputDerivations[p], name)
					}
				}
			}
		case eval.CtxOutput:
			if o, ok := d.InputDerivations[e.Path]; ok {
				// a second output of the same input: its own array
				d.InputDerivations[e.Path] = append(o, e.Output)
				continue
			}
			// A slice of one, capped, in the shared array: the ctx has an
			// element for each, so the array never grows and moves.
			outs = append(outs, e.Output)
			d.InputDerivations[e.Path] = outs[len(outs)-1 : len(outs) : len(outs)]
		default:
			d.InputSources = append(d.InputSources, e.Path)
		}
	}
	if !g.KeepDerivations {
		b.outs = outs
	}

	if d.Builder == "" {
		ev.Throwf("required attribute 'builder' missing")
	}
	if d.System == "" {
		ev.Throwf("required attribute 'system' missing")
	}
	if strings.HasSuffix(drvName, ".drv") {
		ev.Throwf("derivation names are not allowed to end in '.drv'")
	}

	if outputHash != nil {
		if len(outputs) != 1 || outputs[0] != "out" {
			ev.Throwf("multiple outputs are not supported in fixed-output derivations")
		}
		h := parseOutputHash(ev, *outputHash, outputHashAlgo)
		algo := h.Algo.String()
		if mode == "recursive" {
			algo = "r:" + algo
		}
		d.Outputs["out"] = derivation.Output{HashAlgo: algo, Hash: hex.EncodeToString(h.Digest)}
	} else {
		for _, o := range outputs {
			d.Outputs[o] = derivation.Output{}
		}
	}
	hdm, err := d.CalculateOutputPathsModulo(drvName, g.moduloHash)
	if err != nil {
		ev.Throwf("%v", err)
	}
	// Canonical order, so the stored derivation prints as it will be read.
	d.InputSources = sortedSet(d.InputSources)
	for p, outs := range d.InputDerivations {
		if !isSortedSet(outs) {
			d.InputDerivations[p] = sortedSet(outs)
		}
	}

	// Read-only, only the path is needed, not the bytes, nor the
	// references parsed.
	_, readOnly := g.store.(ComputeStore)
	var refPaths []string
	var refs []storepath.StorePath
	if readOnly {
		refPaths = d.AppendReferencePaths(b.refs[:0])
		b.refs = refPaths
		for _, p := range refPaths {
			if err := storepath.Check(p); err != nil {
				ev.Throwf("reference: %v", err)
			}
		}
	} else if refs, err = d.References(); err != nil {
		ev.Throwf("%v", err)
	}
	if strings.ContainsAny(d.System, `"\`) {
		// C++ Nix writes the system unescaped, then fails to read its own
		// .drv back (or reads a different one); fail too rather than make a
		// .drv that does not parse to itself.
		sp, _ := d.DrvPath(drvName)
		ev.Throwf("derivation '%s': the system %q would not read back from the .drv file (C++ Nix writes it unescaped)", sp, d.System)
	}
	var sp storepath.StorePath
	if readOnly {
		h := d.ATermSHA256()
		sp, err = storepath.MakeTextPaths(drvName+".drv", h[:], refPaths)
	} else {
		sp, err = g.store.AddText(g.ctx, drvName+".drv", d.ATerm(), refs)
	}
	if err != nil {
		ev.Throwf("writing derivation %s: %v", drvName, err)
	}
	// The path is the tail of its context element: one string for both.
	ctxAll := sp.PrefixedString("=")
	drvPath := ctxAll[1:]
	rec := newDrvRecord(d, g.KeepDerivations)
	rec.modulo = hdm

	res := make([]eval.Attr, 1, 1+len(d.Outputs))
	// the attributes' contexts, one element each, in one array
	ctxs := make([]string, 1+len(d.Outputs))
	ctxs[0] = ctxAll
	res[0] = drvPathAttr
	res[0].Val = eval.StrCtx(drvPath, eval.Context(ctxs[0:1:1]))
	g.mu.Lock()
	g.drvs[drvPath] = rec
	for o, out := range d.Outputs {
		i := len(res)
		ctxs[i] = "!" + o + "!" + drvPath
		a, ok := g.outKeys[o]
		if !ok {
			a = eval.MkAttr(o, nil)
			g.outKeys[o] = a
		}
		a.Val = eval.StrCtx(out.Path, eval.Context(ctxs[i:i+1:i+1]))
		res = append(res, a)
	}
	g.mu.Unlock()
	return eval.NewAttrs(res)
}

// scratchDrvs recycles the derivations finishDerivation computes with
// when it does not keep them. Their three maps cost about 1 KB per
// derivation (a map of one output is a group of 8 slots, 520 bytes),
// garbage that thousands of derivations pile up before the next
// collection (drv-inputs, a derivation of 16,000 inputs: 102 -> 88 MB
// peak RSS, C++ Nix 92 MB; 4,000: 44 -> 39 MB, Nix 41 MB).
var scratchDrvs = sync.Pool{New: func() any { return derivation.New() }}

// recycleScratchMax is the most entries a recycled derivation's maps
// may have held: clearing a map keeps its room, and the room of one
// large derivation is not worth keeping for the many small ones.
const recycleScratchMax = 64

// recycleDrv hands a scratch derivation back, emptied (it keeps no
// strings of the evaluation alive), unless its maps grew large.
func recycleDrv(d *derivation.Derivation) {
	if len(d.Outputs) > recycleScratchMax || len(d.InputDerivations) > recycleScratchMax || len(d.Env) > recycleScratchMax {
		return
	}
	clear(d.Outputs)
	clear(d.InputDerivations)
	clear(d.Env)
	d.InputSources, d.Args, d.System, d.Builder = nil, nil, "", ""
	scratchDrvs.Put(d)
}

// traceAttr adds C++ Nix's "while evaluating the attribute" frame to an
// evaluation error escaping from the attribute being coerced. One
// deferred call per derivation, not per attribute: add's frame is on the
// recursion path of dependency chains.
func (b *drvBuilder) traceAttr() {
	if b.cur == "" {
		return
	}
	r := recover()
	if r == nil {
		return
	}
	if e, ok := r.(*eval.Error); ok {
		e.Trace = append(e.Trace, eval.NixTrace(b.namePos,
			fmt.Sprintf("while evaluating the attribute '%s' of the derivation '%s'", b.cur, b.drvName)))
	}
	panic(r)
}

// parseOutputHash is C++ Nix's newHashAllowEmpty(outputHash,
// parseHashTypeOpt(outputHashAlgo)).
func parseOutputHash(ev *eval.Evaluator, s string, algoAttr *string) nixhash.Hash {
	var algo nixhash.Algo
	if algoAttr != nil {
		algo, _ = nixhash.ParseAlgo(*algoAttr)
	}
	if s == "" {
		if algo == 0 {
			ev.Throwf("empty hash requires explicit hash type")
		}
		h := nixhash.Hash{Algo: algo, Digest: make([]byte, algo.Size())}
		slog.Warn("found empty hash, assuming " + h.SRI())
		return h
	}
	var h nixhash.Hash
	var err error
	switch {
	case strings.ContainsAny(s, ":-"):
		h, err = nixhash.Parse(s)
		if err == nil && algo != 0 && h.Algo != algo {
			ev.Throwf("hash '%s' should have type '%s'", s, algo)
		}
	case algo == 0:
		ev.Throwf("hash '%s' does not include a type, nor is the type otherwise known from context", s)
	default:
		n := algo.Size()
		if l := len(s); l != 2*n && l != nixbase32.EncodedLen(n) && l != base64.StdEncoding.EncodedLen(n) {
			ev.Throwf("hash '%s' has wrong length for hash type '%s'", s, algo)
		}
		h, err = nixhash.ParseAs(algo, s)
	}
	if err != nil {
		ev.Throwf("invalid outputHash: %v", err)
	}
	return h
}

func sortedSet(in []string) []string {
	if isSortedSet(in) {
		return in
	}
	m := map[string]bool{}
	var out []string
	for _, s := range in {
		if !m[s] {
			m[s] = true
			out = append(out, s)
		}
	}
	sortStrings(out)
	return out
}

func isSortedSet(l []string) bool {
	for i := 1; i < len(l); i++ {
		if l[i-1] >= l[i] {
			return false
		}
	}
	return true
}
