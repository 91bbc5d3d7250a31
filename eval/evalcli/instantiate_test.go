package evalcli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tvix-go/tvix/eval"
)

func TestInstantiateArgs(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f.nix"), []byte(`{ a ? 1, b, ... }: { sum = a + b; s = "x${toString b}"; l = [ 1 (2 + 1) ]; }`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "inc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "inc", "x.nix"), []byte(`"found"`), 0o644); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "f.nix")
	env := map[string]string{"NIX_PATH": "other=" + filepath.Join(dir, "inc")}
	cases := []struct {
		args  []string
		stdin string
		code  int
		out   string
	}{
		{[]string{"--eval", "-E", "1 + 2"}, "", 0, "3\n"},
		{[]string{"--eval", "--strict", "-E", "{ a = [ (1 + 1) ]; }"}, "", 0, "{ a = [ 2 ]; }\n"},
		{[]string{"--eval", "-E", "[ (1 + 1) ]"}, "", 0, "[ <CODE> ]\n"},
		{[]string{"--eval", "--strict", "--arg", "b", "2", f, "-A", "sum"}, "", 0, "3\n"},
		{[]string{"--eval", "--strict", "--argstr", "b", "2", f, "-A", "s"}, "", 0, "\"x2\"\n"},
		{[]string{"--eval", "--strict", "--json", "--arg", "b", "5", f}, "", 0, `{"l":[1,3],"s":"x5","sum":6}`},
		{[]string{"--eval", "--strict", "--arg", "b", "2", f, "-A", "l.1"}, "", 0, "3\n"},
		{[]string{"--eval", "-"}, "2 * 21", 0, "42\n"},
		{[]string{"--eval", "--read-write-mode", "--timeout", "5", "--eval-only", "-E", "true"}, "", 0, "true\n"},
		{[]string{"--eval", "-E", "<x.nix>", "-I", filepath.Join(dir, "inc")}, "", 0, filepath.Join(dir, "inc", "x.nix") + "\n"},
		{[]string{"--eval", "-E", "import <other/x.nix>"}, "", 0, "\"found\"\n"},
		{[]string{"--eval", "--xml", "--no-location", "-E", "1"}, "", 0, "<?xml version='1.0' encoding='utf-8'?>\n<expr>\n  <int value=\"1\" />\n</expr>\n"},
		{[]string{"--parse", "-E", "1 + 2"}, "", 0, "(1 + 2)\n"},
		{[]string{"--parse", "-"}, "x: x.y or 1", 0, "(x: (x).y or 1)\n"},
		{[]string{"--eval", "-E", "throw \"no\""}, "", 1, ""},
		{[]string{"--eval", "-E", "1 +"}, "", 1, ""},
		{[]string{"-E", "1"}, "", 1, ""},
		{[]string{"--eval", "--bogus"}, "", 1, ""},
		{[]string{"--eval", "--arg", "x"}, "", 1, ""},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Run(c.args, false, nil, strings.NewReader(c.stdin), &out, &errb, func(k string) string { return env[k] })
			if code != c.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, c.code, errb.String())
			}
			if c.code == 0 && out.String() != c.out {
				t.Errorf("stdout %q, want %q", out.String(), c.out)
			}
			if c.code != 0 && !strings.HasPrefix(errb.String(), "error: ") {
				t.Errorf("stderr %q does not start with 'error: '", errb.String())
			}
		})
	}
}

func TestEvalModeImplied(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Run([]string{"-E", "1"}, true, nil, nil, &out, &errb, func(string) string { return "" }); code != 0 || out.String() != "1\n" {
		t.Fatalf("exit %d, out %q, err %q", code, out.String(), errb.String())
	}
}

func TestRepl(t *testing.T) {
	r := eval.NewRepl(eval.New(eval.Options{}), t.TempDir())
	steps := []struct{ in, want string }{
		{"x = 1 + 1", ""},
		{"x * 3", "6"},
		{"f = a: a + x", ""},
		{"f 1", "3"},
		{":t f", "a function"},
		{":p { a = [ x ]; }", "{ a = [ 2 ]; }"},
		{"{ a = x; }", "{ a = 2; }"},
	}
	for _, s := range steps {
		if got := r.Line(s.in); got != s.want {
			t.Errorf("%q: got %q, want %q", s.in, got, s.want)
		}
	}
	if got := r.Line("undefinedThing"); !strings.Contains(got, "undefined variable") {
		t.Errorf("error line: %q", got)
	}
	// nix repl prints an error with trace lines without nix-instantiate's
	// hint at --show-trace
	if got := r.Line("{ a = throw \"x\"; }.a"); got != "error: x" {
		t.Errorf("error with a trace: %q", got)
	}
}

// TestReplLoadFunctionWithDefaults: nix repl's :l calls a file that is a
// function with its defaults instead of refusing it.
func TestReplLoadFunctionWithDefaults(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f.nix")
	if err := os.WriteFile(f, []byte("{ greeting ? \"hi\", n ? 2 }: { inherit greeting; twice = n * 2; }"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := eval.NewRepl(eval.New(eval.Options{}), dir)
	if got := r.Line(":l " + f); got != "Added 2 variables." {
		t.Fatalf(":l of a function with defaults: %q", got)
	}
	if got := r.Line("twice"); got != "4" {
		t.Errorf("twice = %q", got)
	}
	g := filepath.Join(dir, "g.nix")
	if err := os.WriteFile(g, []byte("{ needed }: { x = needed; }"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := r.Line(":l " + g); !strings.Contains(got, "'needed'") {
		t.Errorf(":l of a function without a default for needed: %q", got)
	}
}
