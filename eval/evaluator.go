package eval

import (
	"errors"
	"os"
	"sync/atomic"

	"github.com/tvix-go/tvix/eval/syntax"
)

// Options configure an Evaluator.
type Options struct {
	IO IO // how files are reached; default OSIO
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
	// Periodic, when set, is called on the evaluating goroutine every
	// PeriodicSteps thunk forces and lambda calls, between two steps of
	// the evaluation (evalcli collects garbage from it while nothing else
	// runs, instead of beside the evaluation).
	Periodic func()
}

// PeriodicSteps is how many thunk forces and lambda calls come between
// two calls of Options.Periodic (a loop of calls, as concatMap's, forces
// nothing).
const PeriodicSteps = 2048

// Evaluator evaluates Nix expressions. It is not safe for concurrent use.
type Evaluator struct {
	opts        Options
	depth       int
	maxDepth    int
	ticks       int  // steps until the next Options.Periodic call
	stackBase   int  // depth where the current goroutine's stack began (StackDepth)
	stackGrown  bool // growStack ran on the current goroutine
	curPos      syntax.Pos
	global      *scope
	builtins    *Attrs
	importCache map[string]Value
	storeCache  map[string]string
	regexes     map[regexKey]*nixRegex
	replLast    *replacer      // replaceStrings' patterns kept (see replacePatterns)
	replSeen    [2]*List       // and the lists of its last call
	running     []runningThunk // thunks being forced, innermost last
	frames      []callFrame
	sels        []selFrame // selections forcing what they selected, for trace lines
	pairPool    *pairEnv   // call2Simple's environments for reuse, linked through e2.v0
	pairPooled  int
	args        []Value     // arguments of the builtins being called
	envPool     *Env        // callCode's environments for reuse, linked through up
	envPooled   int         // how many
	listParts   []*List     // concatMap's results, innermost call last
	intSlab     *intBoxSlab // boxInt's boxes, intNext of them used
	intNext     int
	lessThanOp  *PrimOp // builtins.lessThan, which sort compares with directly
}

// New makes an evaluator with the standard builtins plus opts.Builtins.
func New(opts Options) *Evaluator {
	if opts.IO == nil {
		opts.IO = OSIO{}
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
	raiseMaxStack()
	ev := &Evaluator{opts: opts, maxDepth: opts.MaxCallDepth, importCache: map[string]Value{},
		storeCache: map[string]string{}, regexes: map[regexKey]*nixRegex{}}
	// (the poll runs without Options.Periodic too: it also grows the
	// stack ahead of deep recursion)
	ev.ticks = PeriodicSteps
	ev.initBuiltins()
	return ev
}

//go:noinline
func (ev *Evaluator) periodic() {
	ev.ticks = PeriodicSteps
	if !ev.stackGrown && ev.depth-ev.stackBase > growStackDepth {
		ev.stackGrown = true
		growStack(ev.depth)
	}
	if ev.opts.Periodic != nil {
		ev.opts.Periodic()
	}
}

// step counts a step of a builtin that builds much in one call, as a
// thunk force counts, so that Options.Periodic runs within it too.
func (ev *Evaluator) step() {
	if ev.ticks--; ev.ticks == 0 {
		ev.periodic()
	}
}

// stepItems counts the making of a list of n items as n/64 steps: one
// `++` of a long list allocates as much as thousands of forces, and a
// fold of them (append-fold: n calls, each copying up to n items) polled
// so rarely that the runtime's backstop, a quarter above the poll's
// target, collected instead.
func (ev *Evaluator) stepItems(n int) {
	if n < 64 {
		return
	}
	copiedItems.Add(int64(n))
	if ev.ticks -= n >> 6; ev.ticks <= 0 {
		ev.periodic()
	}
}

// copiedItems counts the items of the long lists stepItems was told of,
// in every evaluator (only the collector's pace reads it).
var copiedItems atomic.Int64

// CopiedListBytes is how many bytes more than C++ Nix's the long lists
// made by `++` took so far: an item is a 16-byte interface here, an
// 8-byte pointer there. The collector's pace measures what the
// evaluation allocated in C++ Nix's bytes, whose peak is about them.
func CopiedListBytes() int64 { return copiedItems.Load() * 8 }

// Builtins returns the builtins attrset.
func (ev *Evaluator) Builtins() *Attrs { return ev.builtins }

func (ev *Evaluator) getenv(k string) string { return ev.opts.Getenv(k) }

// EvalExpr parses and evaluates an expression; relative paths resolve
// against dir. The result is in weak head normal form.
func (ev *Evaluator) EvalExpr(text, name, dir string) (Value, error) {
	return ev.protect(func() Value {
		return ev.Force(ev.evalSource(syntax.NewSource(name, []byte(text)), dir, nil))
	})
}

// EvalFile evaluates a file (or dir/default.nix) as import would.
func (ev *Evaluator) EvalFile(path string) (Value, error) {
	return ev.protect(func() Value { return ev.Force(ev.importPath(path, false)) })
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
			sc.names[a.Name()] = i
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

func newSource(name, text string) *syntax.Source { return syntax.NewSource(name, []byte(text)) }
