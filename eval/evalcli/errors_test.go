package evalcli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tvix-go/tvix/internal/nixtest"
	"github.com/tvix-go/tvix/internal/testenv"
)

// TestErrorsLikeNix compares what nix-instantiate --eval writes for
// failing evaluations with what C++ Nix 2.8 writes, byte for byte: the
// message, the "at" line, the code around it (the lines before and
// after, numbers in five columns, a file's last line only when a newline
// ends it), "Did you mean", the --show-trace hint and, with
// --show-trace, the trace lines Nix records without it.
func TestErrorsLikeNix(t *testing.T) {
	nixtest.Require(t)
	dir := t.TempDir()
	files := map[string]string{
		"multi.nix":    "{\n" + strings.Repeat("  a = 1;\n", 11) + "  b = 1 + \"x\";\n  c = 2;\n}.b\n",
		"nonl.nix":     "let\n  y = 1;\nin z",
		"blank.nix":    "let\n  a = 1 + \"x\";   \n\nin a\n",
		"imported.nix": "{ x = 1 + \"a\"; }\n",
		"importer.nix": "let f = y: y.z; in f (import ./broken.nix)\n",
		"unclosed.nix": "{\n  a = 1;\n  b = 2\n",
		"broken.nix":   "{ z = throw \"q\"; } // (throw \"w\")\n",
	}
	// errors as nixpkgs code meets them: through lib, the module system,
	// a package scope (all of Nix's trace lines, with --show-trace too)
	lib, _ := filepath.Abs("../../../shared/nixpkgs-lib/lib") // shared/ beside the repository
	if _, err := os.Stat(lib); err != nil {
		testenv.Missing(t, "nixpkgs lib not found: %v", err)
	}
	files["lib-map.nix"] = "let lib = import " + lib + "; in\nlib.concatMapStringsSep \", \" (x: \"v${x}\") [ \"a\" 2 ]\n"
	files["lib-scope.nix"] = "let\n  lib = import " + lib + ";\n  pkgs = lib.makeScope lib.callPackageWith (self: {\n" +
		"    a = self.callPackage ({ b }: { v = b.v + 1; }) { };\n    b = { v = \"x\"; };\n  });\nin pkgs.a.v\n"
	files["lib-type.nix"] = "let lib = import " + lib + "; in\n(lib.evalModules { modules = [\n" +
		"  { options.port = lib.mkOption { type = lib.types.port; default = 80; }; }\n  { port = \"x\"; }\n]; }).config.port\n"
	files["lib-undefined.nix"] = "let lib = import " + lib + "; in\n" +
		"(lib.evalModules { modules = [ { options.x = lib.mkOption { type = lib.types.str; }; } ]; }).config.x\n"
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	exprs := []string{
		`throw "boom"`,
		`abort "no"`,
		`assert 1 == 2; 3`,
		`builtins.length 1`,
		`{ foo = 1; bar = 2; fob = 3; }.fo`,
		`{ }.x`,
		`let s = { abc = 1; abd = 2; abe = 3; abf = 4; abg = 5; abh = 6; }; in s.ab`,
		`let f = { a }: a; in f { b = 1; }`,
		`let f = { alpha, beta }: 1; in f { alpah = 1; beta = 2; }`,
		`(x: { a }: a) 1 { b = 2; }`,
		"let\n  f = x: x + 1;\nin f \"a\"",
		"1 +\n\"x\"\n\n",
		`(x: x) 1 2`,
		`({ a = 1; }).b`,
		`if (x: x) then 1 else 2`,
		`let a = { }; in if a then 1 else 2`,
		`{ a = 1; a = 2; }`,
		`let n = "a"; in { a = 1; ${n} = 2; }`,
		`import ./nope.nix`,
		`import ./imported.nix`,
		`import ./importer.nix`,
		`builtins.map 1 [ 1 ]`,
		`builtins.genList 1 2`,
		`builtins.map ({ a }: a) [ { } ]`,
		`builtins.mapAttrs (n: { a }: a) { x = { }; }`,
		`{ a = { b = throw "x"; }; }`,
		`builtins.deepSeq { a = throw "d"; } 1`,
		`builtins.addErrorContext "ctx" (throw "x")`,
		`builtins.seq (throw "a") 1`,
		`1 < "a"`,
		`[ 1 ] < [ "a" ]`,
		`with 1; a`,
		`{ a = 1; } // 1`,
		`!1`,
		`builtins.readFile ./nope`,
		`builtins.readDir ./nope`,
		`builtins.abort 1`,
		`throw [ "a" ]`,
		`builtins.sort (a: b: a < b) [ 1 "a" ]`,
		// selections force what they select: an error there is "while
		// evaluating the attribute", also when the path's next step fails
		`let x = { a = 1; }; in x.a.b`,
		`{ a = { }; }.a.b`,
		`{ a = { b = throw "t"; }; }.a.b`,
		`let f = s: s.x; in f { x = 1 + "a"; }`,
		`let n = "x"; in { x = throw "q"; }.${n}`,
		`(import ./imported.nix).x`,
		`builtins.map (x: x + "a") [ 1 ]`,
		`throw "a\nb\n\nc"`,
		// syntax errors: bison's token names, the end of the file where
		// Nix's lexer began its last lexeme (a token, blanks, a comment)
		`"abc`,
		`''abc`,
		`"abc${x}def`,
		`"abc${x`,
		`''a${x}b`,
		`"a\`,
		`{ a = 1`,
		`{ a = 1; `,
		"x: x +\n\n  \n",
		"{ a = 1 # c\n",
		`{ a = 1 /* c */`,
		`let a = 1; in`,
		`if true then 1`,
		`if true 1 else 2`,
		`let a = 1; a`,
		`f x y )`,
		`a == b == c`,
		`1 then`,
		`{ a = 1; a.b = 2; }`,
	}
	type run struct {
		name string
		args []string
	}
	var runs []run
	for _, e := range exprs {
		runs = append(runs, run{e, []string{"--eval", "--strict", "-E", e}}, run{e + " (--show-trace)", []string{"--eval", "--strict", "--show-trace", "-E", e}})
	}
	for _, f := range []string{"multi.nix", "nonl.nix", "blank.nix", "unclosed.nix"} {
		runs = append(runs, run{f, []string{"--eval", "--strict", filepath.Join(dir, f)}})
	}
	for _, f := range []string{"lib-map.nix", "lib-scope.nix", "lib-type.nix", "lib-undefined.nix"} {
		runs = append(runs, run{f, []string{"--eval", "--strict", filepath.Join(dir, f)}},
			run{f + " (--show-trace)", []string{"--eval", "--strict", "--show-trace", filepath.Join(dir, f)}})
	}
	for _, r := range runs {
		t.Run(r.name, func(t *testing.T) {
			cmd := nixtest.Command("nix-instantiate", r.args...)
			cmd.Dir = dir
			var nixErr bytes.Buffer
			cmd.Stderr = &nixErr
			if cmd.Run() == nil {
				t.Fatalf("C++ Nix evaluated %q", r.name)
			}
			var lines []string
			for _, l := range strings.Split(strings.TrimRight(nixErr.String(), "\n"), "\n") {
				if !strings.HasPrefix(l, "warning:") {
					lines = append(lines, l)
				}
			}
			want := strings.Join(lines, "\n") + "\n"

			var out, got bytes.Buffer
			cwd, _ := os.Getwd()
			if err := os.Chdir(dir); err != nil {
				t.Fatal(err)
			}
			code := Run(r.args, false, nil, strings.NewReader(""), &out, &got, os.Getenv)
			if err := os.Chdir(cwd); err != nil {
				t.Fatal(err)
			}
			if code == 0 {
				t.Fatalf("evaluated to %q", out.String())
			}
			if got.String() != want {
				t.Errorf("stderr\n%s\nC++ Nix\n%s", got.String(), want)
			}
		})
	}
}

// TestAttrPositionsLikeNix: the positions C++ Nix 2.8 gives attributes
// (unsafeGetAttrPos, which nixpkgs' meta.position reads): those a path
// defines (`a.b.c = 1;`) are where the binding starts. (Inherited ones
// differ: Nix 2.8 puts them right after `inherit`, the language suite
// at each name, as newer Nix does, and the suite is what we follow.)
func TestAttrPositionsLikeNix(t *testing.T) {
	nixtest.Require(t)
	exprs := []string{
		`(builtins.unsafeGetAttrPos "b" { a.b = 1; }.a)`,
		`(builtins.unsafeGetAttrPos "a" { x = 1;  a.b = 1; })`,
		`(builtins.unsafeGetAttrPos "c" { a.b.c = 2; }.a.b)`,
		`(builtins.unsafeGetAttrPos "c" { a = { b = 1; }; a.c = 2; }.a)`,
		`let n = "q"; in (builtins.unsafeGetAttrPos "q" { x.${n} = 1; }.x)`,
	}
	for _, e := range exprs {
		t.Run(e, func(t *testing.T) {
			args := []string{"--eval", "--strict", "-E", e}
			want, err := nixtest.RunErr("nix-instantiate", args...)
			if err != nil {
				t.Fatalf("C++ Nix: %v", err)
			}
			var out, stderr bytes.Buffer
			if code := Run(args, false, nil, strings.NewReader(""), &out, &stderr, os.Getenv); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			if out.String() != string(want) {
				t.Errorf("got %s, C++ Nix %s", out.String(), want)
			}
		})
	}
}
