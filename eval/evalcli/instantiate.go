// Package evalcli implements the command lines of the evaluator
// (nix-instantiate's arguments) so that the tvix binary and the language
// tests share them.
package evalcli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"

	"github.com/tvix-go/tvix/eval"
)

const usage = `usage: %s [options] [files or expressions...]
  --eval                 evaluate and print%s
  --strict               evaluate deeply
  --json | --xml         print as JSON / XML (--no-location: without positions)
  --parse                parse only and print the syntax tree
  -E, --expr             the arguments are expressions, not files ('-' reads stdin)
  -A, --attr PATH        select an attribute path (repeatable)
  --arg NAME EXPR        automatic argument (an expression)
  --argstr NAME STRING   automatic argument (a string)
  -I PATH | NAME=PATH    add to the search path (before $NIX_PATH)
  --show-trace           print the call trace with errors
  --readonly-mode        compute store paths without writing anything
  --read-write-mode      with --eval, still write what toFile, paths and derivations add
  --version              print the version
  ignored: --timeout N --option K V`

type instOpts struct {
	eval, strict, json, xml, location, parse, showTrace, exprMode, help, version, readOnly, readWrite bool
	attrPaths                                                                                         []string
	args                                                                                              []autoArg
	include                                                                                           []string
	files                                                                                             []string
}

type autoArg struct {
	name, val string
	isStr     bool
}

func parseInstArgs(args []string, evalMode bool) (*instOpts, error) {
	o := &instOpts{eval: evalMode, location: true}
	need := func(i, n int, flag string) error {
		if i+n >= len(args) {
			return fmt.Errorf("flag '%s' requires %d argument(s)", flag, n)
		}
		return nil
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch a {
		case "--eval", "--eval-only":
			o.eval = true
		case "--strict":
			o.strict = true
		case "--json":
			o.json = true
		case "--xml":
			o.xml = true
		case "--no-location":
			o.location = false
		case "--parse", "--parse-only":
			o.parse = true
		case "--show-trace":
			o.showTrace = true
		case "--no-show-trace":
			o.showTrace = false
		case "-E", "--expr":
			o.exprMode = true
		case "--readonly-mode", "--read-only":
			o.readOnly = true
		case "--read-write-mode":
			o.readWrite = true
		case "-r", "--dry-run", "--indirect", "--quiet", "-v", "--verbose",
			"--impure", "--no-build-output", "-Q", "--repair":
		case "--timeout", "--add-root", "--max-jobs", "-j", "--store", "--cores":
			if err := need(i, 1, a); err != nil {
				return nil, err
			}
			i++
		case "--option":
			if err := need(i, 2, a); err != nil {
				return nil, err
			}
			i += 2
		case "-A", "--attr":
			if err := need(i, 1, a); err != nil {
				return nil, err
			}
			o.attrPaths = append(o.attrPaths, args[i+1])
			i++
		case "--arg", "--argstr":
			if err := need(i, 2, a); err != nil {
				return nil, err
			}
			o.args = append(o.args, autoArg{name: args[i+1], val: args[i+2], isStr: a == "--argstr"})
			i += 2
		case "-I", "--include":
			if err := need(i, 1, a); err != nil {
				return nil, err
			}
			o.include = append(o.include, args[i+1])
			i++
		case "--help", "-h":
			o.help = true
		case "--version":
			o.version = true
		default:
			if strings.HasPrefix(a, "-I") && len(a) > 2 {
				o.include = append(o.include, a[2:])
				continue
			}
			if strings.HasPrefix(a, "-") && a != "-" {
				return nil, fmt.Errorf("unrecognised flag '%s'", a)
			}
			o.files = append(o.files, a)
		}
	}
	return o, nil
}

// NixPath combines -I entries with $NIX_PATH, -I first.
func NixPath(include []string, getenv func(string) string) []string {
	out := append([]string(nil), include...)
	if np := getenv("NIX_PATH"); np != "" {
		for _, e := range splitNixPath(np) {
			if e != "" {
				out = append(out, e)
			}
		}
	}
	return out
}

// splitNixPath splits on ':' but keeps URLs (https://...) whole.
func splitNixPath(s string) []string {
	var out []string
	cur := ""
	parts := strings.Split(s, ":")
	for i := 0; i < len(parts); i++ {
		p := parts[i]
		if i+1 < len(parts) && strings.HasPrefix(parts[i+1], "//") {
			p += ":" + parts[i+1]
			i++
		}
		out = append(out, cur+p)
	}
	return out
}

// StoreHooks connect evaluation to a store; the tvix command passes them
// to Run (this package stays free of store imports).
type StoreHooks struct {
	// Install adds the store-aware builtins to opts. writable says whether
	// sources and .drv files may be written (instantiation) or only their
	// paths computed (--eval, --parse, --readonly-mode). It returns how to
	// turn a value into the lines nix-instantiate prints, and a cleanup.
	Install func(opts *eval.Options, writable bool) (instantiate func(ev *eval.Evaluator, v eval.Value) []string, done func(), err error)
}

// Run acts as nix-instantiate (evalMode: as if --eval was given) and
// returns the exit status. store is nil for a pure evaluator, which can
// only --eval and --parse. getenv supplies NIX_PATH, HOME and the
// variables builtins.getEnv sees.
func Run(args []string, evalMode bool, store *StoreHooks, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	return RunProgram(Program{Name: "nix-instantiate", EvalMode: evalMode}, args, store, stdin, stdout, stderr, getenv)
}

// Program is the command a user typed, so --help and --version name it
// ("tvix eval", or the nix-instantiate symlink) rather than always
// nix-instantiate.
type Program struct {
	Name    string
	Version string // printed by --version as "NAME (tvix) VERSION"
	// EvalMode acts as if --eval was given (tvix eval).
	EvalMode bool
}

// RunProgram is Run for the command line p.
func RunProgram(p Program, args []string, store *StoreHooks, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	evalMode := p.EvalMode
	o, err := parseInstArgs(args, evalMode)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 1
	}
	if prof := getenv("TVIX_CPUPROFILE"); prof != "" {
		// profiling hook for scripts/bench-eval and performance work
		if f, err := os.Create(prof); err == nil {
			defer f.Close()
			if err := pprof.StartCPUProfile(f); err == nil {
				defer pprof.StopCPUProfile()
			}
		}
	}
	if prof := getenv("TVIX_MEMPROFILE"); prof != "" {
		runtime.MemProfileRate = 64 << 10
		// 1 records every allocation: exact counts for comparing small cuts
		if r, err := strconv.Atoi(getenv("TVIX_MEMPROFILE_RATE")); err == nil && r > 0 {
			runtime.MemProfileRate = r
		}
	} else {
		// Go samples an allocation every 512 KB by default; the records
		// of 10,000 derivations' worth grow to ~1.5 MB of the peak.
		runtime.MemProfileRate = 0
	}
	// TVIX_GC_MINHEAP_MB, TVIX_GC_EXTRA_MB, TVIX_GC_RATIO,
	// TVIX_GC_ALLOCFRAC, TVIX_GC_KEPT, TVIX_GC_KEPTGARBAGE, TVIX_GC_DEAD,
	// TVIX_GC_DEADGARBAGE (percentages) and TVIX_GC_KEPTEXTRA_MB override
	// the evaluation pace, for measuring it.
	pace := defaultEvalPace
	var periodic func() // the collector's poll, evaluating
	pace = paceFromEnv(getenv, pace)
	if !o.eval && !o.parse && getenv("TVIX_GC_MINHEAP_MB") == "" {
		// Instantiating keeps little per derivation beyond its result
		// (paths, the set derivation.nix builds), so a proportional
		// collector keeps the peak near the live heap; the eval floor
		// above would let 10,000 derivations' garbage pile up to 2-3x
		// C++ Nix's peak.
		pct, huge := instantiateGCPercent, true
		if !o.readOnly {
			pct, huge = writeGCPercent, false
		}
		defer tuneGCPercent(getenv, pct, instantiateGCFloor, huge)()
	} else {
		stop, poll := tuneGC(getenv, pace)
		defer stop()
		periodic = poll
	}
	maxDepth := 0
	if d := getenv("TVIX_MAX_CALL_DEPTH"); d != "" {
		n, err := strconv.Atoi(d)
		if err != nil || n <= 0 {
			fmt.Fprintf(stderr, "error: TVIX_MAX_CALL_DEPTH=%q: want a positive number\n", d)
			return 1
		}
		maxDepth = n
	}
	if o.help {
		implied := ""
		if evalMode {
			implied = " (implied here)"
		}
		fmt.Fprintf(stdout, usage+"\n", p.Name, implied)
		return 0
	}
	if o.version {
		v := p.Version
		if v == "" {
			v = "unknown"
		}
		fmt.Fprintf(stdout, "%s (tvix) %s\n", p.Name, v)
		return 0
	}
	evOpts := eval.Options{NixPath: NixPath(o.include, getenv), Getenv: getenv, MaxCallDepth: maxDepth, Periodic: periodic}
	var instantiate func(ev *eval.Evaluator, v eval.Value) []string
	if store != nil {
		var done func()
		instantiate, done, err = store.Install(&evOpts, !o.readOnly && (o.readWrite || !o.eval && !o.parse))
		if err != nil {
			fmt.Fprintf(stderr, "error: %v\n", err)
			return 1
		}
		defer done()
	}
	ev := eval.New(evOpts)
	if prof := getenv("TVIX_MEMPROFILE"); prof != "" {
		defer func() {
			// the profile is as of the last cycle: count every
			// allocation, and (inuse_space) what the evaluator still
			// holds at the end, its import cache above all
			runtime.GC()
			if f, err := os.Create(prof); err == nil {
				pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
			runtime.KeepAlive(ev)
		}()
	}
	cwd, _ := os.Getwd()
	fail := func(err error) int {
		var e *eval.Error
		if errors.As(err, &e) {
			fmt.Fprintln(stderr, e.Format(o.showTrace))
		} else {
			fmt.Fprintf(stderr, "error: %v\n", err)
		}
		return 1
	}
	if !o.eval && !o.parse && instantiate == nil {
		fmt.Fprintln(stderr, "error: writing derivations (.drv files) needs a Nix store, which tvix instantiate does not have yet; use --eval or --parse")
		return 1
	}
	if len(o.files) == 0 {
		if o.exprMode {
			return 0
		}
		o.files = []string{"./default.nix"}
	}
	var autoArgs []eval.Attr
	for _, a := range o.args {
		if a.isStr {
			autoArgs = append(autoArgs, eval.MkAttr(a.name, eval.Str(a.val)))
			continue
		}
		v, err := ev.EvalExpr(a.val, "«string»", cwd)
		if err != nil {
			return fail(err)
		}
		autoArgs = append(autoArgs, eval.MkAttr(a.name, v))
	}
	autoSet := eval.NewAttrs(autoArgs)
	for _, f := range o.files {
		var text []byte
		name, dir := "", cwd
		switch {
		case f == "-":
			b, err := io.ReadAll(stdin)
			if err != nil {
				return fail(err)
			}
			text, name = b, "«stdin»"
		case o.exprMode:
			text, name = []byte(f), "«string»"
		}
		if o.parse {
			if text == nil {
				p, _ := filepath.Abs(f)
				b, err := os.ReadFile(p)
				if err != nil {
					return fail(err)
				}
				text, name, dir = b, p, filepath.Dir(p)
			}
			n, err := ev.CheckParse(text, name, dir)
			if err != nil {
				return fail(err)
			}
			fmt.Fprintln(stdout, eval.PrintSyntax(n))
			continue
		}
		var root eval.Value
		if text != nil {
			root, err = ev.EvalExpr(string(text), name, dir)
		} else {
			p, _ := filepath.Abs(f)
			root, err = ev.EvalFile(p)
		}
		if err != nil {
			return fail(err)
		}
		paths := o.attrPaths
		if len(paths) == 0 {
			paths = []string{""}
		}
		for _, ap := range paths {
			var out bytes.Buffer
			_, err := ev.Run(func() eval.Value {
				v := ev.FindAttrPath(root, ap, autoSet)
				if !o.eval {
					// nix-instantiate always auto-calls what it instantiates.
					for _, line := range instantiate(ev, ev.AutoCall(v, autoSet)) {
						out.WriteString(line)
						out.WriteByte('\n')
					}
					return nil
				}
				if len(autoArgs) > 0 {
					v = ev.AutoCall(v, autoSet)
				}
				switch {
				case o.xml:
					out.WriteString(ev.ToXML(v, o.strict, o.location))
				case o.json:
					// nix-instantiate 2.8 ends JSON output without a newline
					out.WriteString(ev.ToJSON(v))
				default:
					if o.strict {
						ev.ForceDeep(v)
						out.WriteString(eval.PrintValue(ev, v, false))
					} else {
						out.WriteString(eval.PrintLazy(ev, v))
					}
					out.WriteByte('\n')
				}
				return nil
			})
			if err != nil {
				return fail(err)
			}
			stdout.Write(out.Bytes())
		}
	}
	return 0
}

// paceFromEnv is pace with the TVIX_GC_* overrides getenv gives applied;
// values that do not parse, or are below an override's least, are ignored.
func paceFromEnv(getenv func(string) string, pace evalPace) evalPace {
	mb := func(dst *int64) func(int64) { return func(n int64) { *dst = n << 20 } }
	pct := func(dst *float64) func(int64) { return func(n int64) { *dst = float64(n) / 100 } }
	for _, ov := range []struct {
		env string
		min int64 // the least value taken; others are ignored
		set func(int64)
	}{
		{"TVIX_GC_MINHEAP_MB", 1, mb(&pace.floor)},
		{"TVIX_GC_EXTRA_MB", 0, mb(&pace.extra)},
		{"TVIX_GC_RATIO", 100, pct(&pace.ratio)},
		{"TVIX_GC_GARBAGE", 0, pct(&pace.garbage)},
		{"TVIX_GC_GARBAGECAP_MB", 0, mb(&pace.garbageCap)},
		{"TVIX_GC_ALLOCFRAC", 0, pct(&pace.allocFrac)},
		{"TVIX_GC_KEPT", 0, pct(&pace.keptShare)},
		{"TVIX_GC_KEPTGARBAGE", 0, pct(&pace.keptGarbage)},
		{"TVIX_GC_KEPTEXTRA_MB", 0, mb(&pace.keptExtra)},
		{"TVIX_GC_DEAD", 0, pct(&pace.deadShare)},
		{"TVIX_GC_DEADGARBAGE", 0, pct(&pace.deadGarbage)},
	} {
		if s := getenv(ov.env); s != "" {
			if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= ov.min {
				ov.set(n)
			}
		}
	}
	return pace
}
