package eval

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/tvix-go/tvix/eval/syntax"
)

// FileType is what readDir / readFileType report.
type FileType int

const (
	FileUnknown FileType = iota
	FileRegular
	FileDirectory
	FileSymlink
)

func (t FileType) String() string {
	switch t {
	case FileRegular:
		return "regular"
	case FileDirectory:
		return "directory"
	case FileSymlink:
		return "symlink"
	}
	return "unknown"
}

// DirEntry is one entry of a directory listing.
type DirEntry struct {
	Name string
	Type FileType
}

// IO is how the evaluator reaches files. The CLI passes the real file
// system (OSIO); tests can pass an in-memory one.
type IO interface {
	ReadFile(path string) ([]byte, error)
	PathExists(path string) (bool, error)
	ReadDir(path string) ([]DirEntry, error)
	// FileType does not follow a final symlink.
	FileType(path string) (FileType, error)
}

// ReadlinkIO and ExecutableIO are optional extensions of IO, used when a
// path is serialised (NAR) to compute its store path.
type ReadlinkIO interface {
	Readlink(path string) (string, error)
}

type ExecutableIO interface {
	IsExecutable(path string) (bool, error)
}

// OSIO is IO on the local file system.
type OSIO struct{}

func (OSIO) Readlink(p string) (string, error) { return os.Readlink(p) }
func (OSIO) IsExecutable(p string) (bool, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return false, err
	}
	return fi.Mode()&0o111 != 0, nil
}

func (OSIO) ReadFile(p string) ([]byte, error) { return os.ReadFile(p) }
func (OSIO) PathExists(p string) (bool, error) {
	_, err := os.Lstat(p)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrInvalid) {
		return false, nil
	}
	if pe := new(fs.PathError); errors.As(err, &pe) && strings.Contains(err.Error(), "not a directory") {
		return false, nil
	}
	return false, err
}
func (OSIO) ReadDir(p string) ([]DirEntry, error) {
	es, err := os.ReadDir(p)
	if err != nil {
		return nil, err
	}
	out := make([]DirEntry, len(es))
	for i, e := range es {
		out[i] = DirEntry{Name: e.Name(), Type: modeType(e.Type())}
	}
	return out, nil
}
func (OSIO) FileType(p string) (FileType, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return FileUnknown, err
	}
	return modeType(fi.Mode()), nil
}

func modeType(m fs.FileMode) FileType {
	switch {
	case m.IsRegular():
		return FileRegular
	case m.IsDir():
		return FileDirectory
	case m&fs.ModeSymlink != 0:
		return FileSymlink
	}
	return FileUnknown
}

// Options configure an Evaluator.
type Options struct {
	IO       IO
	StoreDir string // default /nix/store
	// NixPath entries as in NIX_PATH / -I: "name=path" or "path".
	NixPath []string
	// Getenv reads environment variables (builtins.getEnv, HOME for ~/).
	Getenv        func(string) string
	CurrentSystem string
	// Builtins adds or replaces builtins: the key is the name under
	// `builtins` (e.g. "derivationStrict"). Values are usually *PrimOp.
	Builtins map[string]Value
	// GlobalBuiltins lists builtin names that are also global variables
	// (as "derivation", "import" are), in addition to Nix's own list.
	GlobalBuiltins []string
	// NixBuiltins adds builtins written in Nix: the source is evaluated
	// with `builtins` in scope, lazily, e.g. corepkgs' derivation.nix.
	NixBuiltins map[string]string
	// CopyToStore is called when a path is used as a string
	// ("${./foo}"); it returns the store path. Without it the evaluator
	// computes the path a copy would have (as nix-instantiate --eval in
	// read-only mode does) without writing anything.
	CopyToStore func(ev *Evaluator, path string) (string, error)
	// Trace receives builtins.trace messages (default: stderr).
	Trace func(msg string)
	// MaxCallDepth bounds nested calls and thunk forcing (default 250000,
	// enough for 100000 nested Nix calls; about 2 KB of Go stack each);
	// deeper evaluation fails with a stack-overflow error instead of
	// crashing.
	MaxCallDepth int
}

// Evaluator evaluates Nix expressions. It is not safe for concurrent use.
type Evaluator struct {
	opts        Options
	depth       int
	maxDepth    int
	stackBase   int // depth where the current goroutine's stack began (StackDepth)
	curPos      syntax.Pos
	global      *scope
	builtins    *Attrs
	importCache map[string]Value
	storeCache  map[string]string
	running     []runningThunk // thunks being forced, innermost last
	frames      []callFrame
	pairPool    *pairEnv
	args        []Value // arguments of the builtins being called
	envPool     *Env
}

// pairEnv holds the two environments of a curried two-argument call.
type pairEnv struct {
	e1 Env
	e2 Env
}

// callFrame is a function call in progress, for error traces.
type callFrame struct {
	lc  *lambdaCode
	pos syntax.Pos
}

type stackMark struct{ running, frames, depth, args int }

func (ev *Evaluator) mark() stackMark {
	return stackMark{len(ev.running), len(ev.frames), ev.depth, len(ev.args)}
}

// traceFrom records the calls that were in progress when e was raised.
func (ev *Evaluator) traceFrom(e *Error, m stackMark) {
	fs := ev.frames[m.frames:]
	if len(fs) > 32 {
		fs = fs[len(fs)-32:]
	}
	for i := len(fs) - 1; i >= 0; i-- {
		f := fs[i]
		e.Trace = append(e.Trace, TraceFrame{Pos: f.lc.pos, Msg: "while calling " + lambdaName(f.lc)})
		if f.pos.IsValid() {
			e.Trace = append(e.Trace, TraceFrame{Pos: f.pos, Msg: "from call site"})
		}
	}
}

// addErrorContext adds builtins.addErrorContext's message to an error
// passing through it, after the calls made inside it, as Nix's
// --show-trace lists them. The thunks the error interrupted are reset
// first so that the message can be evaluated.
func (ev *Evaluator) addErrorContext(e *Error, m stackMark, msg Value) {
	ev.traceFrom(e, m)
	ev.unwindTo(m)
	func() {
		defer func() {
			if r := recover(); r != nil {
				// A message that fails to evaluate is left out; the
				// original error is what matters.
				ev.unwindTo(m)
			}
		}()
		s := ev.coerceToString(msg, ev.curPos, false, false)
		e.Trace = append(e.Trace, TraceFrame{Msg: s.S})
	}()
}

func (ev *Evaluator) unwindTo(m stackMark) {
	ev.unwind(m.running, m.depth)
	clear(ev.frames[m.frames:])
	ev.frames = ev.frames[:m.frames]
	if len(ev.args) > m.args {
		clear(ev.args[m.args:])
		ev.args = ev.args[:m.args]
	}
}

// unwind resets the thunks that were being forced when an error
// propagated past them, down to the given stack height.
func (ev *Evaluator) unwind(height, depth int) {
	for _, r := range ev.running[height:] {
		if r.t.running() {
			r.t.c, r.t.env = r.c, r.env
		}
	}
	clear(ev.running[height:])
	ev.running = ev.running[:height]
	ev.depth = depth
}

// New makes an evaluator with the standard builtins plus opts.Builtins.
func New(opts Options) *Evaluator {
	if opts.IO == nil {
		opts.IO = OSIO{}
	}
	if opts.StoreDir == "" {
		opts.StoreDir = "/nix/store"
	}
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	if opts.CurrentSystem == "" {
		opts.CurrentSystem = "x86_64-linux"
	}
	if opts.MaxCallDepth == 0 {
		opts.MaxCallDepth = 250000
	}
	ev := &Evaluator{opts: opts, maxDepth: opts.MaxCallDepth, importCache: map[string]Value{},
		storeCache: map[string]string{}}
	ev.initBuiltins()
	return ev
}

func (ev *Evaluator) StoreDir() string { return ev.opts.StoreDir }

// Builtins returns the builtins attrset.
func (ev *Evaluator) Builtins() *Attrs { return ev.builtins }

func (ev *Evaluator) getenv(k string) string { return ev.opts.Getenv(k) }

// protect runs f, turning evaluation panics into errors. Evaluation runs
// with a big stack budget so deep (but bounded) recursion works.
func (ev *Evaluator) protect(f func() Value) (v Value, err error) {
	done := make(chan struct{})
	oldBase := ev.stackBase
	ev.stackBase = ev.depth
	defer func() { ev.stackBase = oldBase }()
	go func() {
		defer close(done)
		m := ev.mark()
		defer func() {
			r := recover()
			// Frames an addErrorContext below already recorded were
			// dropped from ev.frames; the rest follow its context lines.
			if e, ok := r.(*Error); ok {
				ev.traceFrom(e, m)
			}
			ev.unwindTo(m)
			if r != nil {
				if e, ok := r.(*Error); ok {
					err = e
					return
				}
				if se, ok := r.(error); ok && strings.Contains(se.Error(), "stack") {
					err = &Error{Kind: ErrStackOverflow, Msg: "stack overflow"}
					return
				}
				err = &Error{Kind: ErrEval, Msg: fmt.Sprintf("internal error: %v\n%s", r, debug.Stack())}
			}
		}()
		v = f()
	}()
	<-done
	return v, err
}

func init() {
	// Deeply nested lazy data (foldl over long lists, long // chains)
	// recurses deeply; MaxCallDepth keeps it below this.
	debug.SetMaxStack(4 << 30)
}

// ParseFile parses a file as source text.
func ParseSource(name string, text []byte) (syntax.Node, error) {
	return syntax.Parse(syntax.NewSource(name, text))
}

// EvalExpr parses and evaluates an expression; relative paths resolve
// against dir. The result is in weak head normal form.
func (ev *Evaluator) EvalExpr(text, name, dir string) (Value, error) {
	return ev.protect(func() Value {
		return ev.Force(ev.evalSource(syntax.NewSource(name, []byte(text)), dir, nil))
	})
}

// EvalFile evaluates a file (or dir/default.nix) as import would.
func (ev *Evaluator) EvalFile(path string) (Value, error) {
	return ev.protect(func() Value { return ev.Force(ev.importPath(path, ev.curPos)) })
}

// Run calls f with evaluation errors turned into returned errors; use it
// around ForceDeep, Call... from outside the package.
func (ev *Evaluator) Run(f func() Value) (Value, error) { return ev.protect(f) }

func (ev *Evaluator) evalSource(src *syntax.Source, dir string, extra *Attrs) Value {
	n, err := syntax.Parse(src)
	if err != nil {
		var pe *syntax.ParseError
		if errors.As(err, &pe) {
			panic(&Error{Kind: ErrParse, Msg: pe.Msg, Pos: pe.Pos, Cause: err})
		}
		panic(&Error{Kind: ErrParse, Msg: err.Error(), Cause: err})
	}
	return ev.evalNode(n, dir, extra)
}

func (ev *Evaluator) evalNode(n syntax.Node, dir string, extra *Attrs) Value {
	cp := &compiler{ev: ev, dir: dir}
	sc := ev.global
	var env *Env
	if extra != nil {
		sc = &scope{parent: ev.global, names: map[string]int{}}
		env = newEnv(nil, extra.Len())
		for i, a := range extra.All() {
			sc.names[a.Name] = i
			*env.slot(i) = a.Val
		}
	}
	c := cp.compile(n, sc)
	return c(ev, env)
}

// CheckParse parses and compiles without evaluating (nix-instantiate
// --parse), reporting undefined variables.
func (ev *Evaluator) CheckParse(text []byte, name, dir string) (syntax.Node, error) {
	n, err := syntax.Parse(syntax.NewSource(name, text))
	if err != nil {
		return nil, err
	}
	_, err = ev.protect(func() Value {
		cp := &compiler{ev: ev, dir: dir}
		cp.compile(n, ev.global)
		return nil
	})
	return n, err
}

func (ev *Evaluator) resolveImport(p string) string {
	if ft, err := ev.opts.IO.FileType(p); err == nil {
		if ft == FileSymlink {
			if r, err := filepath.EvalSymlinks(p); err == nil {
				if ft2, err := ev.opts.IO.FileType(r); err == nil && ft2 == FileDirectory {
					return p + "/default.nix"
				}
			}
		}
		if ft == FileDirectory {
			return p + "/default.nix"
		}
	}
	return p
}

func (ev *Evaluator) importPath(p string, pos syntax.Pos) Value {
	p = ev.resolveImport(p)
	if v, ok := ev.importCache[p]; ok {
		return v
	}
	text, err := ev.opts.IO.ReadFile(p)
	if rest, ok := strings.CutPrefix(p, corepkgsPrefix); ok && corepkgs[rest] != "" {
		text, err = []byte(corepkgs[rest]), nil
	}
	if err != nil {
		ev.throwAt(pos, "getting status of '%s': %s", p, ioErrText(err))
	}
	t := &Thunk{c: func(ev *Evaluator, _ *Env) Value {
		return ev.evalSource(syntax.NewSource(p, text), filepath.Dir(p), nil)
	}}
	ev.importCache[p] = t
	return t
}

func ioErrText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	if errors.Is(err, fs.ErrNotExist) {
		return "No such file or directory"
	}
	s := err.Error()
	if s != "" {
		s = strings.ToUpper(s[:1]) + s[1:]
	}
	return s
}

// forceItem forces a list element and stores the value in place of the
// thunk: lists are immutable, so this only drops the indirection (and
// lets the thunk be collected).
func (ev *Evaluator) forceItem(l *List, i int) Value {
	v := l.Items[i]
	if t, ok := v.(*Thunk); ok {
		v = ev.forceThunk(t)
		l.Items[i] = v
	}
	return v
}

// Force evaluates v to weak head normal form.
func (ev *Evaluator) Force(v Value) Value {
	if t, ok := v.(*Thunk); ok {
		if t.c == nil && t.env == nil {
			return t.v
		}
		return ev.forceThunk(t)
	}
	return v
}

// runningThunk remembers how to restart a thunk whose evaluation failed.
type runningThunk struct {
	t   *Thunk
	c   code
	env *Env
}

func (ev *Evaluator) forceThunk(t *Thunk) Value {
	if t.c == nil {
		if t.env == nil {
			return t.v
		}
		ev.throwInfiniteRecursion()
	}
	ev.depth++
	if ev.depth > ev.maxDepth {
		ev.throwStackOverflow()
	}
	c, env := t.c, t.env
	t.c, t.env = nil, blackhole
	// A failure leaves t running; tryEval and the API boundary restore
	// the thunks on this stack so that forcing t again re-evaluates it
	// (and fails again).
	ev.running = append(ev.running, runningThunk{t, c, env})
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

//go:noinline
func (ev *Evaluator) throwInfiniteRecursion() {
	ev.ThrowKind(ErrInfiniteRecursion, "infinite recursion encountered")
}

// Call applies f to arguments and returns the result forced.
func (ev *Evaluator) CallN(f Value, args []Value) Value {
	r := ev.Force(f)
	for _, a := range args {
		r = ev.Force(ev.call(r, a, ev.curPos))
	}
	return r
}

// Call1 applies f to one argument, forcing the result.
func (ev *Evaluator) Call1(f, a Value) Value { return ev.Force(ev.call(ev.Force(f), a, ev.curPos)) }

// The functions through which evaluation recurses (call, call2,
// callPrimOpStack, forceThunk, Force) keep their common case in a small
// frame, the rest in functions of their own: a chain of 10,000
// derivations nests them 10,000 deep (~20 frames per link), so the Go
// stack grows by every byte of these frames at each level.

// call applies a forced function value to one argument; the result may
// be a thunk.
func (ev *Evaluator) call(f Value, arg Value, pos syntax.Pos) Value {
	switch fn := f.(type) {
	case *Lambda:
		return ev.callCode(fn.fn, fn.env, arg, pos)
	case *PrimOp:
		if fn.Arity == 1 {
			n := len(ev.args)
			ev.args = append(ev.args, arg)
			return ev.callPrimOpStack(fn, n)
		}
	}
	return ev.callOther(f, arg, pos)
}

// callOther is call for partial applications of builtins, functors and
// what is not a function.
//
//go:noinline
func (ev *Evaluator) callOther(f Value, arg Value, pos syntax.Pos) Value {
	switch fn := f.(type) {
	case *PrimOp:
		x := &struct {
			PrimOpApp
			a [1]Value
		}{}
		x.Op, x.a[0] = fn, arg
		x.Args = x.a[:]
		return &x.PrimOpApp
	case *PrimOpApp:
		if len(fn.Args)+1 == fn.Op.Arity {
			n := len(ev.args)
			ev.args = append(ev.args, fn.Args...)
			ev.args = append(ev.args, arg)
			return ev.callPrimOpStack(fn.Op, n)
		}
		args := make([]Value, len(fn.Args)+1)
		copy(args, fn.Args)
		args[len(fn.Args)] = arg
		return &PrimOpApp{Op: fn.Op, Args: args}
	case *Attrs:
		if functor, ok := fn.Get("__functor"); ok {
			g := ev.Force(ev.call(ev.Force(functor), fn, pos))
			return ev.call(g, arg, pos)
		}
	}
	ev.throwAt(pos, "attempt to call something which is not a function but %s", showType(f))
	return nil
}

// call2 applies f to two arguments; for a curried lambda (a: b: ...)
// it skips building the intermediate closure.
func (ev *Evaluator) call2(f Value, a, b Value, pos syntax.Pos) Value {
	switch fn := f.(type) {
	case *Lambda:
		if fn.fn.simple && fn.fn.inner != nil {
			return ev.call2Lambda(fn, a, b, pos)
		}
	case *PrimOp:
		if fn.Arity == 2 {
			n := len(ev.args)
			ev.args = append(ev.args, a, b)
			return ev.callPrimOpStack(fn, n)
		}
	}
	return ev.call(ev.Force(ev.call(f, a, pos)), b, pos)
}

// call2Lambda is call2 of a curried lambda.
//
//go:noinline
func (ev *Evaluator) call2Lambda(l *Lambda, a, b Value, pos syntax.Pos) Value {
	ev.depth++
	if ev.depth > ev.maxDepth {
		ev.throwStackOverflow()
	}
	if l.fn.inner.simple {
		// both environments in one allocation, reused when the body
		// cannot keep a reference to them
		e := ev.pairPool
		if e != nil && l.fn.inner.noCapture {
			ev.pairPool = nil
		} else {
			e = &pairEnv{}
		}
		e.e1.up, e.e1.v0 = l.env, a
		e.e2.up, e.e2.v0 = &e.e1, b
		ev.frames = append(ev.frames, callFrame{l.fn.inner, pos})
		v := l.fn.inner.body(ev, &e.e2)
		ev.frames = ev.frames[:len(ev.frames)-1]
		if l.fn.inner.noCapture {
			e.e1.up, e.e1.v0, e.e2.v0 = nil, nil, nil
			ev.pairPool = e
		}
		ev.depth--
		return v
	}
	env := newEnv(l.env, 1)
	env.v0 = a
	v := ev.callCode(l.fn.inner, env, b, pos)
	ev.depth--
	return v
}

// callPrimOpStack calls p with the arguments pushed on ev.args from n on
// (no allocation per call), and pops them. Builtins do not keep their
// argument slice (the capacity is capped so that appending to it cannot
// reach the stack).
func (ev *Evaluator) callPrimOpStack(p *PrimOp, n int) Value {
	end := len(ev.args)
	ev.depth++
	if ev.depth > ev.maxDepth {
		ev.throwStackOverflow()
	}
	v := p.Fn(ev, ev.args[n:end:end])
	ev.depth--
	clear(ev.args[n:])
	ev.args = ev.args[:n]
	return v
}

// throwStackOverflow is kept out of line: the frames of its callers
// (the recursion path) would hold its arguments.
//
//go:noinline
func (ev *Evaluator) throwStackOverflow() {
	ev.ThrowKind(ErrStackOverflow, "stack overflow (possible infinite recursion)")
}

func (ev *Evaluator) callLambda(fn *Lambda, arg Value, pos syntax.Pos) Value {
	return ev.callCode(fn.fn, fn.env, arg, pos)
}

func (ev *Evaluator) callCode(lc *lambdaCode, cenv *Env, arg Value, pos syntax.Pos) Value {
	ev.depth++
	if ev.depth > ev.maxDepth {
		ev.throwStackOverflow()
	}
	if lc.simple && lc.noCapture {
		env := ev.envPool
		if env != nil {
			ev.envPool = nil
		} else {
			env = newEnv(nil, 1)
		}
		env.up, env.v0 = cenv, arg
		ev.frames = append(ev.frames, callFrame{lc, pos})
		v := lc.body(ev, env)
		ev.frames = ev.frames[:len(ev.frames)-1]
		env.up, env.v0 = nil, nil
		ev.envPool = env
		ev.depth--
		return v
	}
	env := newEnv(cenv, lc.nslots)
	if lc.simple {
		env.v0 = arg
	} else {
		ev.bindFormals(lc, env, arg, pos)
	}
	ev.frames = append(ev.frames, callFrame{lc, pos})
	v := lc.body(ev, env)
	ev.frames = ev.frames[:len(ev.frames)-1]
	ev.depth--
	return v
}

// bindFormals fills env from a set pattern's argument. It is kept out of
// callCode, whose frame every nested call holds while its body runs.
//
//go:noinline
func (ev *Evaluator) bindFormals(lc *lambdaCode, env *Env, arg Value, pos syntax.Pos) {
	a := ev.Force(arg)
	as, ok := a.(*Attrs)
	if !ok {
		ev.throwAt(pos, "value is %s while a set was expected", showType(a))
	}
	used := 0
	own, j := as.own, 0
	merge := as.ov == nil && len(own) > 8
	for _, f := range lc.formals {
		var x *Attr
		if merge {
			// formals and attributes are both sorted: walk them together
			for j < len(own) && own[j].Name < f.name {
				j++
			}
			if j < len(own) && own[j].Name == f.name {
				x = &own[j]
			}
		} else {
			x = as.Lookup(f.name)
		}
		if x != nil {
			*env.slot(f.slot) = x.Val
			used++
		} else if f.def != nil {
			*env.slot(f.slot) = nil
		} else {
			ev.throwAt(pos, "%s called without required argument '%s'", lambdaName(lc), f.name)
		}
	}
	for _, f := range lc.formals {
		if s := env.slot(f.slot); *s == nil {
			*s = f.def(ev, env)
		}
	}
	if !lc.ellipsis && used < as.Len() {
		for _, x := range as.All() {
			found := false
			for _, f := range lc.formals {
				if f.name == x.Name {
					found = true
					break
				}
			}
			if !found {
				ev.throwAt(pos, "%s called with unexpected argument '%s'", lambdaName(lc), x.Name)
			}
		}
	}
	if lc.atSlot >= 0 {
		*env.slot(lc.atSlot) = arg
	}
}

func lambdaName(lc *lambdaCode) string {
	if lc.name != "" {
		return "function '" + lc.name + "'"
	}
	return "anonymous function at " + lc.pos.String()
}

func (ev *Evaluator) forceBool(v Value, pos syntax.Pos) bool {
	v = ev.Force(v)
	b, ok := v.(Bool)
	if !ok {
		ev.throwAt(pos, "value is %s while a Boolean was expected", showType(v))
	}
	return bool(b)
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
		ev.throwAt(pos, "value is %s while a set was expected", showType(v))
	}
	return a
}

func (ev *Evaluator) ForceList(v Value) *List { return ev.forceListAt(v, ev.curPos) }

func (ev *Evaluator) forceListAt(v Value, pos syntax.Pos) *List {
	v = ev.Force(v)
	l, ok := v.(*List)
	if !ok {
		ev.throwAt(pos, "value is %s while a list was expected", showType(v))
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

// ForceDeep evaluates v completely (deepSeq).
func (ev *Evaluator) ForceDeep(v Value) Value {
	seen := map[any]bool{}
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
			for _, a := range x.All() {
				rec(a.Val)
			}
			ev.depth -= dataDepthWeight
		}
	}
	rec(v)
	return ev.Force(v)
}

func (ev *Evaluator) add(a, b Value, pos syntax.Pos) Value {
	a = ev.Force(a)
	switch x := a.(type) {
	case Int:
		switch y := ev.Force(b).(type) {
		case Int:
			return x + y
		case Float:
			return Float(x) + y
		default:
			ev.throwAt(pos, "cannot add %s to an integer", showType(y))
		}
	case Float:
		switch y := ev.Force(b).(type) {
		case Int:
			return x + Float(y)
		case Float:
			return x + y
		default:
			ev.throwAt(pos, "cannot add %s to a float", showType(y))
		}
	case Path:
		s := ev.coerceToString(b, pos, false, false)
		if len(s.Ctx()) > 0 {
			ev.throwAt(pos, "a string that refers to a store path cannot be appended to a path")
		}
		return Path(canonPath(string(x) + s.S))
	case *String:
		s := ev.coerceToString(b, pos, false, true)
		if s.S == "" && len(s.Ctx()) == 0 {
			return x
		}
		return StrCtx(x.S+s.S, MergeContext(x.Ctx(), s.Ctx()))
	}
	s1 := ev.coerceToString(a, pos, false, true)
	s2 := ev.coerceToString(b, pos, false, true)
	return StrCtx(s1.S+s2.S, MergeContext(s1.Ctx(), s2.Ctx()))
}

func (ev *Evaluator) arith(op byte, a, b Value, pos syntax.Pos) Value {
	a, b = ev.Force(a), ev.Force(b)
	if x, ok := a.(Int); ok {
		if y, ok := b.(Int); ok {
			switch op {
			case '-':
				return x - y
			case '*':
				return x * y
			case '/':
				if y == 0 {
					ev.throwAt(pos, "division by zero")
				}
				if x == math.MinInt64 && y == -1 {
					ev.throwAt(pos, "integer overflow in dividing %d / %d", x, y)
				}
				return x / y
			}
		}
	}
	var fx, fy float64
	switch x := a.(type) {
	case Int:
		fx = float64(x)
	case Float:
		fx = float64(x)
	default:
		ev.throwAt(pos, "value is %s while an integer was expected", showType(a))
	}
	switch y := b.(type) {
	case Int:
		fy = float64(y)
	case Float:
		fy = float64(y)
	default:
		ev.throwAt(pos, "value is %s while an integer was expected", showType(b))
	}
	switch op {
	case '-':
		return Float(fx - fy)
	case '*':
		return Float(fx * fy)
	}
	if fy == 0 {
		ev.throwAt(pos, "division by zero")
	}
	return Float(fx / fy)
}

// Equal is Nix's ==.
func (ev *Evaluator) Equal(a, b Value, pos syntax.Pos) bool {
	a, b = ev.Force(a), ev.Force(b)
	switch x := a.(type) {
	case Int:
		switch y := b.(type) {
		case Int:
			return x == y
		case Float:
			return Float(x) == y
		}
		return false
	case Float:
		switch y := b.(type) {
		case Int:
			return x == Float(y)
		case Float:
			return x == y
		}
		return false
	case Bool:
		y, ok := b.(Bool)
		return ok && x == y
	case Null:
		_, ok := b.(Null)
		return ok
	case *String:
		y, ok := b.(*String)
		return ok && x.S == y.S
	case Path:
		y, ok := b.(Path)
		return ok && x == y
	case *List:
		y, ok := b.(*List)
		if !ok || len(x.Items) != len(y.Items) {
			return false
		}
		if x == y {
			return true
		}
		for i := range x.Items {
			if !ev.equalElem(x.Items[i], y.Items[i], pos) {
				return false
			}
		}
		return true
	case *Attrs:
		y, ok := b.(*Attrs)
		if !ok {
			return false
		}
		if x == y {
			return true
		}
		if ev.isDerivation(x) && ev.isDerivation(y) {
			o1, ok1 := x.Get("outPath")
			o2, ok2 := y.Get("outPath")
			if ok1 && ok2 {
				return ev.Equal(o1, o2, pos)
			}
		}
		if x.Len() != y.Len() {
			return false
		}
		xa, ya := x.All(), y.All()
		for i := range xa {
			if xa[i].Name != ya[i].Name {
				return false
			}
		}
		for i := range xa {
			if !ev.equalElem(xa[i].Val, ya[i].Val, pos) {
				return false
			}
		}
		return true
	case *Lambda, *PrimOp, *PrimOpApp:
		return false
	}
	return false
}

// equalElem compares members of lists and sets: like C++ Nix, a member
// shared by both sides (the same unevaluated cell) is equal to itself even
// when it is a function.
func (ev *Evaluator) equalElem(a, b Value, pos syntax.Pos) bool {
	switch x := a.(type) {
	case *Thunk:
		if y, ok := b.(*Thunk); ok && x == y {
			return true
		}
	case *Lambda:
		if y, ok := b.(*Lambda); ok && x == y {
			return true
		}
	case *PrimOp:
		if y, ok := b.(*PrimOp); ok && x == y {
			return true
		}
	}
	return ev.Equal(a, b, pos)
}

func (ev *Evaluator) isDerivation(a *Attrs) bool {
	t, ok := a.Get("type")
	if !ok {
		return false
	}
	s, ok := ev.Force(t).(*String)
	return ok && s.S == "derivation"
}

func (ev *Evaluator) lessThan(a, b Value, pos syntax.Pos) bool {
	return ev.compare(a, b, pos) < 0
}

// compare orders two values as builtins.lessThan and sort do.
func (ev *Evaluator) compare(a, b Value, pos syntax.Pos) int {
	a, b = ev.Force(a), ev.Force(b)
	switch x := a.(type) {
	case Int:
		switch y := b.(type) {
		case Int:
			return cmp3(x < y, x > y)
		case Float:
			return cmp3(Float(x) < y, Float(x) > y)
		}
	case Float:
		switch y := b.(type) {
		case Int:
			return cmp3(x < Float(y), x > Float(y))
		case Float:
			return cmp3(x < y, x > y)
		}
	case *String:
		if y, ok := b.(*String); ok {
			return strings.Compare(x.S, y.S)
		}
	case Path:
		if y, ok := b.(Path); ok {
			return strings.Compare(string(x), string(y))
		}
	case *List:
		if y, ok := b.(*List); ok {
			for i := 0; ; i++ {
				if i == len(y.Items) {
					if i == len(x.Items) {
						return 0
					}
					return 1
				}
				if i == len(x.Items) {
					return -1
				}
				if !ev.Equal(x.Items[i], y.Items[i], pos) {
					return ev.compare(x.Items[i], y.Items[i], pos)
				}
			}
		}
	}
	ev.throwAt(pos, "cannot compare %s with %s", showType(a), showType(b))
	return 0
}

func cmp3(lt, gt bool) int {
	switch {
	case lt:
		return -1
	case gt:
		return 1
	}
	return 0
}

// CoerceToString converts a value as string interpolation does
// ("${x}"): strings, paths (copied to the store), and attrsets with
// __toString or outPath.
func (ev *Evaluator) CoerceToString(v Value) *String {
	return ev.coerceToString(v, ev.curPos, false, true)
}

// CoerceToStringMore converts as builtins.toString does (also ints,
// floats, bools, null, lists), without copying paths.
func (ev *Evaluator) CoerceToStringMore(v Value, copyToStore bool) *String {
	return ev.coerceToString(v, ev.curPos, true, copyToStore)
}

func (ev *Evaluator) coerceToString(v Value, pos syntax.Pos, more, copyToStore bool) *String {
	// Strings and the outPath of derivations are handled here, in a small
	// frame and without recursion: a derivation depending on another is
	// forced from inside this call, so chains of them nest it deeply.
	for {
		if t, ok := v.(*Thunk); ok {
			v = ev.forceThunk(t) // not Force: one frame less on the recursion path
		}
		switch x := v.(type) {
		case *String:
			return x
		case *Attrs:
			if x.Lookup("__toString") == nil {
				if o := x.Lookup("outPath"); o != nil {
					v = o.Val
					continue
				}
			}
		}
		return ev.coerceToStringSlow(v, pos, more, copyToStore)
	}
}

// coerceToStringSlow is coerceToString for the other cases.
//
//go:noinline
func (ev *Evaluator) coerceToStringSlow(v Value, pos syntax.Pos, more, copyToStore bool) *String {
	v = ev.Force(v)
	switch x := v.(type) {
	case *String:
		return x
	case Path:
		if copyToStore {
			sp := ev.copyPathToStore(string(x), pos)
			return StrCtx(sp, Context{sp})
		}
		return Str(string(x))
	case *Attrs:
		if f, ok := x.Get("__toString"); ok {
			r := ev.Force(ev.call(ev.Force(f), x, pos))
			return ev.coerceToString(r, pos, more, copyToStore)
		}
		if o, ok := x.Get("outPath"); ok {
			return ev.coerceToString(o, pos, more, copyToStore)
		}
	case Int:
		if more {
			return Str(strconv.FormatInt(int64(x), 10))
		}
	case Float:
		if more {
			return Str(strconv.FormatFloat(float64(x), 'f', 6, 64))
		}
	case Bool:
		if more {
			if x {
				return Str("1")
			}
			return Str("")
		}
	case Null:
		if more {
			return Str("")
		}
	case *List:
		if more {
			var b []byte
			var ctx Context
			for i, it := range x.Items {
				s := ev.coerceToString(it, pos, more, copyToStore)
				if i > 0 {
					itv := ev.Force(x.Items[i-1])
					if l, ok := itv.(*List); !(ok && len(l.Items) == 0) {
						b = append(b, ' ')
					}
				}
				b = append(b, s.S...)
				ctx = MergeContext(ctx, s.Ctx())
			}
			return StrCtx(string(b), ctx)
		}
	}
	ev.throwAt(pos, "cannot coerce %s to a string", showType(v))
	return nil
}

func (ev *Evaluator) copyPathToStore(p string, pos syntax.Pos) string {
	if sp, ok := ev.storeCache[p]; ok {
		return sp
	}
	var sp string
	var err error
	if ev.opts.CopyToStore != nil {
		sp, err = ev.opts.CopyToStore(ev, p)
	} else {
		sp, err = ev.computeStorePath(p)
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			ev.throwAt(pos, "getting status of '%s': No such file or directory", p)
		}
		ev.throwAt(pos, "copying path '%s' to the store: %v", p, err)
	}
	ev.storeCache[p] = sp
	return sp
}
