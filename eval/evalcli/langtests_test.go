package evalcli

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tvix-go/tvix/internal/testenv"
)

// langTestsDir is the Nix language test suite (test input outside the
// repository, see shared/nix-lang-tests/README.md beside it).
func langTestsDir(t *testing.T) string {
	dir := os.Getenv("NIX_LANG_TESTS")
	if dir == "" {
		dir = "../../../shared/nix-lang-tests" // the shared/ folder beside the repository
	}
	if _, err := os.Stat(filepath.Join(dir, "lang")); err != nil {
		testenv.Missing(t, "Nix language tests not found at %s (set NIX_LANG_TESTS): %v", dir, err)
	}
	return dir
}

type langResult struct {
	name string
	pass bool
	why  string
}

func runOne(args []string, stdin []byte, env map[string]string) (code int, out []byte) {
	var stdout, stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Run(args, false, nil, bytes.NewReader(stdin), &stdout, &stderr, func(k string) string { return env[k] })
	}()
	select {
	case code = <-done:
		return code, stdout.Bytes()
	case <-time.After(30 * time.Second):
		return 124, nil
	}
}

// runLangTests mirrors run.sh.
func runLangTests(t *testing.T, dir string) []langResult {
	t.Chdir(dir)
	cwd, _ := os.Getwd()
	env := map[string]string{"TEST_VAR": "foo", "NIX_STORE_DIR": "/nix/store", "HOME": "/fake-home",
		"NIX_PATH": "lang/dir3:lang/dir4"}
	var res []langResult
	okay, _ := filepath.Glob("lang/eval-okay-*.nix")
	for _, f := range okay {
		name := strings.TrimSuffix(filepath.Base(f), ".nix")
		base := "lang/" + name
		if _, err := os.Stat(base + ".exp.xml"); err == nil {
			code, out := runOne([]string{"--eval", "--xml", "--no-location", "--strict", f}, nil, env)
			exp, _ := os.ReadFile(base + ".exp.xml")
			res = append(res, langResult{name, code == 0 && bytes.Equal(out, exp), "xml"})
			continue
		}
		if _, err := os.Stat(base + ".exp-disabled"); err == nil {
			continue
		}
		var flags []string
		if b, err := os.ReadFile(base + ".flags"); err == nil {
			flags = strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
		}
		code, out := runOne(append(flags, "--eval", "--strict", f), nil, env)
		out = bytes.ReplaceAll(out, []byte(cwd), []byte("/pwd"))
		exp, _ := os.ReadFile(base + ".exp")
		res = append(res, langResult{name, code == 0 && bytes.Equal(out, exp), "output"})
	}
	fails, _ := filepath.Glob("lang/eval-fail-*.nix")
	for _, f := range fails {
		name := strings.TrimSuffix(filepath.Base(f), ".nix")
		flags := []string{"--eval", "--strict", "--show-trace"}
		if b, err := os.ReadFile("lang/" + name + ".flags"); err == nil {
			var fl []string
			for _, line := range strings.Split(string(b), "\n") {
				line, _, _ = strings.Cut(line, "#")
				fl = append(fl, strings.Fields(line)...)
			}
			flags = fl
		}
		code, _ := runOne(append(flags, f), nil, env)
		res = append(res, langResult{name, code != 0 && code != 124, "exit"})
	}
	for _, kind := range []string{"okay", "fail"} {
		files, _ := filepath.Glob("lang/parse-" + kind + "-*.nix")
		for _, f := range files {
			name := strings.TrimSuffix(filepath.Base(f), ".nix")
			src, _ := os.ReadFile(f)
			code, _ := runOne([]string{"--parse", "-"}, src, env)
			res = append(res, langResult{name, (code == 0) == (kind == "okay") && code != 124, "parse"})
		}
	}
	return res
}

func readList(t *testing.T, p string) map[string]bool {
	f, err := os.Open(p)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	defer f.Close()
	m := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l != "" && !strings.HasPrefix(l, "#") {
			m[l] = true
		}
	}
	return m
}

// TestLangSuite runs the Nix language tests and fails when a test in
// testdata/langtests-pass.txt no longer passes.
func TestLangSuite(t *testing.T) {
	dir := langTestsDir(t)
	expected := readList(t, filepath.Join(mustGetwd(t), "testdata", "langtests-pass.txt"))
	res := runLangTests(t, dir)
	passed := map[string]bool{}
	var newly []string
	for _, r := range res {
		if r.pass {
			passed[r.name] = true
			if !expected[r.name] {
				newly = append(newly, r.name)
			}
		}
	}
	var regressed []string
	for name := range expected {
		if !passed[name] {
			regressed = append(regressed, name)
		}
	}
	sort.Strings(regressed)
	t.Logf("%d of %d language tests pass (%d expected)", len(passed), len(res), len(expected))
	if len(newly) > 0 {
		t.Logf("passing but not in the expected list: %s", strings.Join(newly, " "))
	}
	if len(regressed) > 0 {
		t.Errorf("regressed: %s", strings.Join(regressed, " "))
	}
	if out := os.Getenv("LANGTESTS_WRITE"); out != "" {
		var names []string
		for n := range passed {
			names = append(names, n)
		}
		sort.Strings(names)
		if err := os.WriteFile(out, []byte(strings.Join(names, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func mustGetwd(t *testing.T) string {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}
