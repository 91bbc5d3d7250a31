package glue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tvix-go/tvix/eval"
	"github.com/tvix-go/tvix/internal/nixtest"
)

// fixtureDir holds files the expressions import.
func fixtureDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"tree/sub", "tree/skip"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{"data.txt": "data\n", "tree/run.sh": "#!/bin/sh\necho hi\n", "tree/a": "a",
		"tree/sub/b": "b", "tree/skip/c": "c", "tree/sub/x.o": "obj"}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(dir, "tree/run.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a", filepath.Join(dir, "tree/link")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// newEval returns an evaluator with the glue installed on store.
func newEval(store Store) (*eval.Evaluator, *Glue) {
	g := New(context.Background(), store)
	g.KeepDerivations = true
	var opts eval.Options
	g.Install(&opts)
	return eval.New(opts), g
}

const prelude = `
  mk = a: derivation ({ builder = ":"; system = ":"; } // a);
  bar = mk { name = "bar"; outputHash = "08813cbee9903c62be4c5027726a418a300da4500b2d369d3af9286f4815ceba"; outputHashAlgo = "sha256"; outputHashMode = "recursive"; };
  foo = mk { name = "foo"; inherit bar; };
  multi = mk { name = "multi"; outputs = [ "out" "lib" "dev" ]; };
  fodA = mk { name = "same"; builder = "/a"; outputHash = "sha256-LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="; };
  fodB = mk { name = "same"; builder = "/b"; outputHash = "sha256-LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="; };
  c1 = mk { name = "c1"; dep = foo; };
  c2 = mk { name = "c2"; dep = c1; multi = multi.lib; };
  c3 = mk { name = "c3"; dep = c2; also = c1; args = [ "${c2}/bin/x" ]; };
  text = builtins.toFile "hello.txt" "hello world\n";
  h = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
`

// instantiateCases are compared by the lines nix-instantiate prints and the
// bytes of every .drv file it writes.
var instantiateCases = []string{
	`mk { name = "foo"; builder = "/bin/sh"; system = "x86_64-linux"; }`,
	`mk { name = "foo"; args = [ "--foo" "42" "--bar" ]; }`,
	`mk { name = "foo"; outputs = [ "foo" "bar" ]; }`,
	`bar`, `foo`, `multi`, `multi.lib`, `multi.dev`, `c3`,
	`mk { name = "bins"; outputs = [ "bin" "out" ]; }`,
	`mk { name = "uselib"; lib = multi.lib; two = "${multi.lib} ${multi.dev}"; }`,
	`mk { name = "collapse"; a = fodA; b = fodB; }`,
	`mk { name = "fodin"; dep = c1; outputHash = h; outputHashAlgo = "sha256"; }`,
	`mk { name = "fod"; outputHash = h; outputHashAlgo = "sha256"; }`,
	`mk { name = "fod"; outputHash = h; outputHashAlgo = "sha256"; outputHashMode = "flat"; }`,
	`mk { name = "fod"; outputHash = "094qif9n4cq4fdg459qzbhg1c6wywawwaaivx0k0x8xhbyx4vwic"; outputHashAlgo = "sha256"; outputHashMode = "recursive"; }`,
	`mk { name = "fod"; outputHash = "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="; outputHashAlgo = "sha256"; }`,
	`mk { name = "fod"; outputHash = "sha256-LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="; outputHashMode = "recursive"; }`,
	`mk { name = "fod"; outputHash = "sha256:094qif9n4cq4fdg459qzbhg1c6wywawwaaivx0k0x8xhbyx4vwic"; }`,
	`mk { name = "fod"; outputHash = "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"; outputHashAlgo = "sha1"; }`,
	`mk { name = "fod"; outputHash = "sha1-qvTGHdzF6KLavt4PO0gs2a6pQ00="; outputHashMode = "recursive"; }`,
	`mk { name = "fod"; outputHash = "sha512-m3HSJL1i83hdltRq0+o9czGb+8KJDKra4t/3JRlnPKcjI8PZm6XBHXx6zG4UuMXaDEZjR1wuXDre9G9zvN7AQw=="; }`,
	`mk { name = "fod"; outputHash = "11w1pmwfdpz9pisbhp5qiv38q6dmidq2ipcqykw3p0sb6yrqcij79rwcwcjbxyzwbdal349qbxrncbk7pmd6snljrfpiwv2pljd4wcv"; outputHashAlgo = "sha512"; outputHashMode = "recursive"; }`,
	`mk { name = "fod"; outputHash = "5d41402abc4b2a76b9719d911017c592"; outputHashAlgo = "md5"; }`,
	`mk { name = "structured"; __structuredAttrs = true; n = 1; f = 1.5; b = true; l = [ 1 "two" null ]; s = { a.b = "c"; }; dep = foo; p = ./data.txt; }`,
	`mk { name = "structured-multi"; __structuredAttrs = true; outputs = [ "out" "doc" ]; x = "y"; }`,
	`mk { name = "paf"; passAsFile = [ "big" ]; big = "lots of text"; }`,
	"mk { name = \"enc\"; u = \"ÅÄÖ 🦀\"; l = \"\xc5\xc4\xd6\"; e = \"a\\nb\\tc\\rd\\\"e\\\\f\"; c = \"\x01\x7f\"; }",
	`mk { name = "coerce"; t = true; f = false; n = null; i = 42; l = [ "a" 1 true null [ "b" ] ]; fl = 3.25; }`,
	`mk { name = "nulls"; __ignoreNulls = true; n = null; k = "kept"; }`,
	`mk { name = "oddkeys"; "a b" = "1"; "x\"y" = "2"; }`,
	`mk { name = "src"; script = text; f = ./data.txt; d = ./tree; }`,
	`mk { name = "srcbuilder"; builder = ./tree/run.sh; }`,
	`mk { name = "drvctx"; d = c1.drvPath; }`,
	`mk { name = "discard"; d = builtins.unsafeDiscardOutputDependency c2.drvPath; }`,
	`mk { name = "ph"; outputs = [ "out" "bin" ]; p = builtins.placeholder "bin"; }`,
	`mk { name = "tfref"; f = builtins.toFile "ref.txt" "see ${text}"; }`,
	`mk { name = "filtered"; src = builtins.filterSource (p: t: baseNameOf p != "skip" && t != "symlink") ./tree; }`,
	`mk { name = "pathed"; src = builtins.path { path = ./tree; name = "renamed"; filter = p: t: !(builtins.match ".*\\.o" p != null); }; }`,
	`mk { name = "flatpath"; src = builtins.path { path = ./data.txt; recursive = false; }; }`,
	`mk { name = "sp"; s = builtins.storePath text; }`,
	`[ foo (mk { name = "l2"; }) [ multi.lib ] ]`,
	`mk { name = "sfod"; __structuredAttrs = true; outputHash = h; outputHashAlgo = "sha256"; outputHashMode = "recursive"; }`,
	`mk { name = "snulls"; __structuredAttrs = true; __ignoreNulls = true; n = null; k = [ null ]; builder = "${c1}/bin/sh"; }`,
	`mk { name = "oddsystem"; system = "a b\nc\td"; }`,
	`mk { name = "outputs-split"; outputs = [ "a b" ]; }`,
	`mk { name = "pathargs"; args = [ ./data.txt "${text}" 1 true ]; }`,
	`mk { name = "fodpath"; src = builtins.path { path = ./data.txt; recursive = false; sha256 = "0pvfiwz7pm97az8hkhpimdkyar8lkynzhnpfbam0r85nmb8v4rv6"; }; }`,
	`mk { name = "deep"; d = builtins.foldl' (acc: i: mk { name = "n${toString i}"; inherit acc; }) foo (builtins.genList (i: i) 30); }`,
	`{ a = foo; b = { recurseForDerivations = true; c = c1; }; d = { e = c2; }; f = 1; }`,
	// an input's whole closure beside some of its outputs, and several
	// outputs of one input: derivationStrict's input lists share arrays
	`mk { name = "both"; d = c2.drvPath; o = c1; l = multi.lib; a = "${multi}${multi.dev}"; m = c2; }`,
	// more context elements than the builder's set squeezes at
	`mk { name = "wide"; deps = builtins.genList (i: mk { name = "w${toString i}"; outputs = [ "out" "dev" ]; }) 100; devs = map (d: d.dev) (builtins.genList (i: mk { name = "w${toString i}"; outputs = [ "out" "dev" ]; }) 100); again = builtins.genList (i: mk { name = "w${toString i}"; outputs = [ "out" "dev" ]; }) 50; }`,
}

func TestOracleInstantiate(t *testing.T) {
	nixtest.Require(t)
	dir := fixtureDir(t)
	var expr strings.Builder
	fmt.Fprintf(&expr, "let\n%sin [\n", prelude)
	for _, c := range instantiateCases {
		fmt.Fprintf(&expr, "  (%s)\n", c)
	}
	expr.WriteString("]\n")
	file := filepath.Join(dir, "default.nix")
	if err := os.WriteFile(file, []byte(expr.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	want := strings.Split(strings.TrimRight(string(nixtest.RunIn(t, dir, "nix-instantiate", file)), "\n"), "\n")

	ev, g := newEval(ComputeStore{})
	v, err := ev.EvalFile(file)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Instantiate(ev, v)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("instantiate:\n got %q\nwant %q", got, want)
	}
	// without keeping the derivations, finishDerivation recycles them and
	// its builders: the same paths
	ev2, g2 := newEval(ComputeStore{})
	g2.KeepDerivations = false
	v2, err := ev2.EvalFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if got2, err := Instantiate(ev2, v2); err != nil || strings.Join(got2, "\n") != strings.Join(want, "\n") {
		t.Fatalf("instantiate, derivations not kept: %v\n got %q\nwant %q", err, got2, want)
	}
	for _, p := range g.DerivationPaths() {
		d, _ := g.Derivation(p)
		onDisk, err := os.ReadFile(p)
		if err != nil {
			t.Errorf("%s: tvix made it but nix did not: %v", p, err)
			continue
		}
		if !bytes.Equal(d.ATerm(), onDisk) {
			t.Errorf("%s:\n got %q\nwant %q", p, d.ATerm(), onDisk)
		}
	}
	t.Logf("%d expressions, %d derivations identical to nix-instantiate's", len(instantiateCases), len(g.DerivationPaths()))
}

// evalCases are compared by builtins.toJSON of their value (paths and
// context-free strings).
var evalCases = []string{
	`builtins.toFile "hello.txt" "hello world\n"`,
	`builtins.toFile "ref.txt" "see ${text}"`,
	`"${./data.txt}"`, `"${./tree}"`,
	`builtins.filterSource (p: t: t != "symlink") ./tree`,
	`builtins.path { path = ./tree; }`,
	`builtins.path { path = ./tree; name = "x"; recursive = true; }`,
	`builtins.path { path = ./data.txt; recursive = false; sha256 = "0pvfiwz7pm97az8hkhpimdkyar8lkynzhnpfbam0r85nmb8v4rv6"; }`,
	`builtins.storePath text`, `builtins.storePath "${text}"`,
	`foo.outPath`, `foo.drvPath`, `multi.dev.outPath`, `(mk { name = "x"; outputs = [ "a" "b" ]; }).outPath`,
	`builtins.attrNames multi`, `multi.outputName`, `multi.lib.outputName`, `builtins.length multi.all`,
	`builtins.getContext foo.drvPath`, `builtins.getContext "${multi.lib}${text}"`,
	`builtins.placeholder "out"`, `builtins.placeholder "dev"`, `toString foo`, `"${multi}"`,
}

func TestOracleEval(t *testing.T) {
	nixtest.Require(t)
	dir := fixtureDir(t)
	var expr strings.Builder
	fmt.Fprintf(&expr, "let\n%sin builtins.toJSON [\n", prelude)
	for _, c := range evalCases {
		fmt.Fprintf(&expr, "  (%s)\n", c)
	}
	expr.WriteString("]\n")
	file := filepath.Join(dir, "eval.nix")
	if err := os.WriteFile(file, []byte(expr.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	want := strings.TrimSpace(string(nixtest.RunIn(t, dir, "nix-instantiate", "--eval", "--strict", file)))

	ev, _ := newEval(ComputeStore{})
	v, err := ev.EvalFile(file)
	if err != nil {
		t.Fatal(err)
	}
	got := eval.PrintValue(ev, v, true)
	t.Logf("%d values identical to nix-instantiate --eval: %.300s", len(evalCases), got)
	if got != want {
		t.Fatalf("eval:\n got %s\nwant %s", got, want)
	}
}

func TestErrors(t *testing.T) {
	dir := fixtureDir(t)
	// tvixOnly marks messages of tvix's own; the rest are checked against
	// C++ Nix too.
	type tc struct {
		expr, want string
		tvixOnly   bool
	}
	tests := []tc{
		{`derivation { builder = ":"; system = ":"; }`, "attribute 'name' missing for call to 'derivationStrict'", false},
		{`mk { name = "x"; builder = ""; }`, "required attribute 'builder' missing", false},
		{`mk { name = "x"; system = ""; }`, "required attribute 'system' missing", false},
		{`mk { name = "x"; system = "a\"b"; }`, "would not read back", true},
		{`mk { name = "x"; system = "a\\b"; }`, "would not read back", true},
		{`mk { name = "a b"; }`, "invalid character", true},
		{`mk { name = ""; }`, "empty", true},
		{`builtins.toFile "a b" "x"`, "invalid character", true},
		{`mk { name = "x.drv"; }`, "derivation names are not allowed to end in '.drv'", false},
		{`mk { name = "x"; outputs = [ "out" "out" ]; }`, "duplicate derivation output 'out'", false},
		{`mk { name = "x"; outputs = [ "drv" ]; }`, "invalid derivation output name 'drv'", false},
		{`builtins.derivationStrict { name = "x"; builder = ":"; system = ":"; outputs = [ ]; }`, "derivation cannot have an empty set of outputs", false},
		{`mk { name = "x"; outputs = [ "out" "dev" ]; outputHash = h; outputHashAlgo = "sha256"; }`, "multiple outputs are not supported in fixed-output derivations", false},
		{`mk { name = "x"; outputHash = h; outputHashMode = "weird"; outputHashAlgo = "sha256"; }`, "invalid value 'weird' for 'outputHashMode' attribute", false},
		{`mk { name = "x"; outputHash = h; }`, "does not include a type, nor is the type otherwise known from context", false},
		{`mk { name = "x"; outputHash = ""; }`, "empty hash requires explicit hash type", false},
		{`mk { name = "x"; outputHash = "abc"; outputHashAlgo = "sha256"; }`, "hash 'abc' has wrong length for hash type 'sha256'", false},
		{`mk { name = "x"; outputHash = "sha1-qvTGHdzF6KLavt4PO0gs2a6pQ00="; outputHashAlgo = "sha256"; }`, "hash 'sha1-qvTGHdzF6KLavt4PO0gs2a6pQ00=' should have type 'sha256'", false},
		{`mk { name = "x"; outputHash = "sha256:zzzz"; }`, "invalid outputHash", true},
		{`mk { name = "x"; __contentAddressed = true; }`, "ca-derivations", false},
		{`derivation { name = foo.outPath; builder = ":"; system = ":"; }`, "is not allowed to refer to a store path", false},
		{`builtins.toFile "x" "${foo}"`, "in 'toFile': the file named 'x' must not contain a reference to a derivation", false},
		{`builtins.path { path = ./data.txt; foo = 1; }`, "unsupported argument 'foo' to 'addPath'", false},
		{`builtins.path { name = "x"; }`, "'path' required", false},
		{`builtins.path { path = ./data.txt; sha256 = h; }`, "store path mismatch", false},
		{`builtins.filterSource 1 ./tree`, "first argument in call to 'filterSource' is not a function", false},
		{`builtins.storePath "/tmp"`, "is not in the Nix store", false},
		{`builtins.storePath "relative"`, "doesn't represent an absolute path", false},
	}
	_, nixErr := exec.LookPath("nix-instantiate")
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			expr := "let\n" + prelude + "in builtins.seq (builtins.deepSeq (" + tt.expr + ") null) null"
			if !tt.tvixOnly && nixErr == nil {
				cmd := nixtest.Command("nix-instantiate", "--eval", "--readonly-mode", "-E", expr)
				cmd.Dir = dir
				out, err := cmd.CombinedOutput()
				if err == nil || !strings.Contains(string(out), tt.want) {
					t.Errorf("C++ Nix says %q (err %v), not %q", out, err, tt.want)
				}
			}
			ev, _ := newEval(ComputeStore{})
			v, err := ev.EvalExpr(expr, "<test>", dir)
			if err == nil {
				t.Fatalf("evaluated to %v, want error %q", v, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

// TestDirStore checks that writing mode puts the .drv, toFile output and
// imported trees where the computed paths say.
func TestDirStore(t *testing.T) {
	dir := fixtureDir(t)
	storeDir := t.TempDir()
	ev, g := newEval(DirStore{Dir: storeDir})
	v, err := ev.EvalExpr("let\n"+prelude+"in mk { name = \"w\"; t = text; d = ./tree; f = builtins.filterSource (p: t: t == \"directory\" || baseNameOf p == \"b\") ./tree; }", "<test>", dir)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := Instantiate(ev, v)
	if err != nil || len(lines) != 1 {
		t.Fatalf("Instantiate = %v, %v", lines, err)
	}
	d, ok := g.Derivation(lines[0])
	if !ok {
		t.Fatalf("no derivation %s", lines[0])
	}
	data, err := os.ReadFile(filepath.Join(storeDir, filepath.Base(lines[0])))
	if err != nil || !bytes.Equal(data, d.ATerm()) {
		t.Fatalf(".drv in DirStore: %v\n%q", err, data)
	}
	for _, src := range d.InputSources {
		if _, err := os.Lstat(filepath.Join(storeDir, filepath.Base(src))); err != nil {
			t.Errorf("input source %s not written: %v", src, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(storeDir, filepath.Base(d.Env["f"]), "sub", "b")); err != nil || string(b) != "b" {
		t.Errorf("filtered tree: %q, %v", b, err)
	}
	if _, err := os.Lstat(filepath.Join(storeDir, filepath.Base(d.Env["f"]), "a")); err == nil {
		t.Errorf("filtered tree kept a file the filter dropped")
	}
	fi, err := os.Stat(filepath.Join(storeDir, filepath.Base(d.Env["d"]), "run.sh"))
	if err != nil || fi.Mode()&0o100 == 0 {
		t.Errorf("executable bit lost: %v %v", fi, err)
	}
}

// BenchmarkInstantiate evaluates testdata/bench.nix (4001 derivations, 2001 printed) in
// read-only mode; scripts/bench-derivation times nix-instantiate on it.
func BenchmarkInstantiate(b *testing.B) {
	file, err := filepath.Abs("testdata/bench.nix")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		ev, g := newEval(ComputeStore{})
		v, err := ev.EvalFile(file)
		if err != nil {
			b.Fatal(err)
		}
		v, err = ev.Run(func() eval.Value { return ev.Call1(v, eval.NewAttrs(nil)) })
		if err != nil {
			b.Fatal(err)
		}
		lines, err := Instantiate(ev, v)
		if err != nil {
			b.Fatal(err)
		}
		if len(lines) != 2001 || len(g.DerivationPaths()) != 4001 {
			b.Fatalf("%d lines, %d derivations", len(lines), len(g.DerivationPaths()))
		}
	}
}

// TestBenchExpressionMatchesNix keeps the benchmark honest: a small
// instance of it gives nix-instantiate's paths.
func TestBenchExpressionMatchesNix(t *testing.T) {
	nixtest.Require(t)
	file, err := filepath.Abs("testdata/bench.nix")
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Fields(string(nixtest.RunIn(t, ".", "nix-instantiate", "--readonly-mode", "--arg", "n", "20", file)))
	ev, _ := newEval(ComputeStore{})
	v, err := ev.EvalFile(file)
	if err != nil {
		t.Fatal(err)
	}
	v, err = ev.Run(func() eval.Value { return ev.Call1(v, eval.AttrsFromMap(map[string]eval.Value{"n": eval.Int(20)})) })
	if err != nil {
		t.Fatal(err)
	}
	got, err := Instantiate(ev, v)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("got %v\nwant %v", got, want)
	}
}

func TestErrorTrace(t *testing.T) {
	ev, _ := newEval(ComputeStore{})
	_, err := ev.EvalExpr(`(derivation { name = "x"; builder = ":"; system = ":"; foo = throw "boom"; }).drvPath`, "<test>", t.TempDir())
	var e *eval.Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v, want an *eval.Error", err)
	}
	want := "while evaluating the attribute 'foo' of the derivation 'x'"
	for _, f := range e.Trace {
		if f.Msg == want {
			return
		}
	}
	t.Fatalf("trace %+v lacks %q", e.Trace, want)
}

// A chain of derivations deeper than stackChunkDepth is instantiated on
// several goroutine stacks (derivationStrict moves to a fresh one): the
// paths are still Nix's, and an error at the far end of the chain still
// reaches tryEval and the caller with its trace.
func TestDeepChainOnNewStacks(t *testing.T) {
	file, err := filepath.Abs("testdata/bench-chain.nix")
	if err != nil {
		t.Fatal(err)
	}
	const n = 600 // ~4 evaluator levels per link: a few stack moves
	chain := func(root string) string {
		return `let
		  mk = a: derivation ({ builder = "/bin/sh"; system = "x86_64-linux"; } // a);
		  step = prev: i: mk { name = "chain-${toString i}"; inherit prev; };
		in builtins.foldl' step (mk { name = "root"; ` + root + ` }) (builtins.genList (i: i) ` + fmt.Sprint(n) + `)`
	}
	cases := []struct {
		name, expr, want, wantErr string
	}{
		{name: "tryEval", expr: `(builtins.tryEval (` + chain(`bad = throw "boom";`) + `).drvPath).success`, want: "false"},
		{name: "error", expr: `(` + chain(`bad = throw "boom";`) + `).drvPath`,
			wantErr: "while evaluating the attribute 'bad' of the derivation 'root'"},
		{name: "ok", expr: `builtins.substring 0 0 (` + chain("") + `).drvPath`, want: `""`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev, _ := newEval(ComputeStore{})
			v, err := ev.EvalExpr(c.expr, "<test>", t.TempDir())
			if err == nil {
				_, err = ev.Run(func() eval.Value { return ev.ForceDeep(v) })
			}
			if c.wantErr != "" {
				var e *eval.Error
				if !errors.As(err, &e) {
					t.Fatalf("err = %v, want an *eval.Error", err)
				}
				for _, f := range e.Trace {
					if f.Msg == c.wantErr {
						return
					}
				}
				t.Fatalf("trace %+v lacks %q", e.Trace, c.wantErr)
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := eval.PrintValue(ev, v, false); got != c.want {
				t.Fatalf("got %s, want %s", got, c.want)
			}
		})
	}
	t.Run("matches nix", func(t *testing.T) {
		nixtest.Require(t)
		want := strings.Fields(string(nixtest.RunIn(t, ".", "nix-instantiate", "--readonly-mode", "--arg", "n", fmt.Sprint(n), file)))
		ev, g := newEval(ComputeStore{})
		v, err := ev.EvalFile(file)
		if err != nil {
			t.Fatal(err)
		}
		v, err = ev.Run(func() eval.Value { return ev.Call1(v, eval.AttrsFromMap(map[string]eval.Value{"n": eval.Int(n)})) })
		if err != nil {
			t.Fatal(err)
		}
		got, err := Instantiate(ev, v)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("got %v\nwant %v", got, want)
		}
		if d := len(g.DerivationPaths()); d != n+1 {
			t.Errorf("%d derivations recorded, want %d", d, n+1)
		}
	})
}
