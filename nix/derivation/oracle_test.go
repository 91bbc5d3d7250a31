package derivation

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/tvix-go/tvix/internal/nixtest"
	"github.com/tvix-go/tvix/nix/nixbase32"
)

// hashForms returns a digest of "hello" in every notation Nix accepts for
// outputHash.
func hashForms(algo string) (b16, b32, b64, sri string) {
	var d []byte
	switch algo {
	case "md5":
		s := md5.Sum([]byte("hello"))
		d = s[:]
	case "sha1":
		s := sha1.Sum([]byte("hello"))
		d = s[:]
	case "sha256":
		s := sha256.Sum256([]byte("hello"))
		d = s[:]
	case "sha512":
		s := sha512.Sum512([]byte("hello"))
		d = s[:]
	}
	b64 = base64.StdEncoding.EncodeToString(d)
	return hex.EncodeToString(d), nixbase32.EncodeToString(d), b64, algo + "-" + b64
}

// oraclePrelude is shared by all oracle expressions.
const oraclePrelude = `
  mk = a: derivation ({ builder = ":"; system = ":"; } // a);
  bar = mk { name = "bar"; outputHash = "08813cbee9903c62be4c5027726a418a300da4500b2d369d3af9286f4815ceba"; outputHashAlgo = "sha256"; outputHashMode = "recursive"; };
  foo = mk { name = "foo"; inherit bar; };
  multi = mk { name = "multi"; outputs = [ "out" "lib" "dev" ]; };
  fodA = mk { name = "same"; builder = "/a"; outputHash = "%[1]s"; outputHashAlgo = "sha256"; };
  fodB = mk { name = "same"; builder = "/b"; outputHash = "%[1]s"; outputHashAlgo = "sha256"; };
  c1 = mk { name = "c1"; dep = foo; };
  c2 = mk { name = "c2"; dep = c1; multi = multi.lib; };
  c3 = mk { name = "c3"; dep = c2; also = c1; args = [ "${c2}/bin/x" ]; };
  text = builtins.toFile "hello.txt" "hello world\n";
`

type oracleCase struct{ name, expr string }

func oracleCases() []oracleCase {
	s16, s32, s64, sSRI := hashForms("sha256")
	h16, h32, h64, hSRI := hashForms("sha1")
	x16, x32, x64, xSRI := hashForms("sha512")
	m16, _, _, mSRI := hashForms("md5")
	fod := func(mode, algo, hash string) string {
		m := ""
		if mode != "" {
			m = fmt.Sprintf(`outputHashMode = %q; `, mode)
		}
		a := ""
		if algo != "" {
			a = fmt.Sprintf(`outputHashAlgo = %q; `, algo)
		}
		return fmt.Sprintf(`mk { name = "fod"; %s%soutputHash = %q; }`, m, a, hash)
	}
	return []oracleCase{
		{"bar-vector", `bar`},
		{"foo-vector", `foo`},
		{"minimal", `mk { name = "minimal"; }`},
		{"args", `mk { name = "args"; args = [ "--foo" "42" "--bar" ]; }`},
		{"builder-path-arg", `mk { name = "sh"; builder = "/bin/sh"; args = [ "-c" "echo hi > $out" ]; }`},
		{"multi-out", `multi`},
		{"multi-out-bin-first", `mk { name = "bins"; outputs = [ "bin" "out" ]; }`},
		{"explicit-out", `mk { name = "explicit"; outputs = [ "out" ]; }`},
		{"dep-on-lib-output", `mk { name = "uselib"; lib = multi.lib; }`},
		{"dep-on-two-outputs", `mk { name = "usetwo"; x = "${multi.lib} ${multi.dev}"; }`},
		{"chain-3", `c3`},
		{"diamond", `mk { name = "diamond"; l = c1; r = mk { name = "r"; dep = foo; }; }`},
		{"fod-input-collapse", `mk { name = "collapse"; a = fodA; b = fodB; }`},
		{"fod-with-inputs", `mk { name = "fodin"; dep = c1; outputHash = "` + s16 + `"; outputHashAlgo = "sha256"; }`},
		{"fod-flat-sha256-b16", fod("flat", "sha256", s16)},
		{"fod-flat-sha256-nb32", fod("flat", "sha256", s32)},
		{"fod-flat-sha256-b64", fod("flat", "sha256", s64)},
		{"fod-flat-sha256-sri", fod("flat", "", sSRI)},
		{"fod-flat-sha256-sri-algo", fod("flat", "sha256", sSRI)},
		{"fod-mode-omitted", fod("", "sha256", s16)},
		{"fod-rec-sha256-b16", fod("recursive", "sha256", s16)},
		{"fod-rec-sha256-nb32", fod("recursive", "sha256", s32)},
		{"fod-rec-sha256-b64", fod("recursive", "sha256", s64)},
		{"fod-rec-sha256-sri", fod("recursive", "", sSRI)},
		{"fod-flat-sha1-b16", fod("flat", "sha1", h16)},
		{"fod-flat-sha1-nb32", fod("flat", "sha1", h32)},
		{"fod-rec-sha1-b64", fod("recursive", "sha1", h64)},
		{"fod-rec-sha1-sri", fod("recursive", "", hSRI)},
		{"fod-flat-sha512-b16", fod("flat", "sha512", x16)},
		{"fod-flat-sha512-nb32", fod("flat", "sha512", x32)},
		{"fod-rec-sha512-b64", fod("recursive", "sha512", x64)},
		{"fod-rec-sha512-sri", fod("recursive", "", xSRI)},
		{"fod-flat-md5", fod("flat", "md5", m16)},
		{"fod-rec-md5-sri", fod("recursive", "", mSRI)},
		{"structured-attrs", `mk { name = "structured"; __structuredAttrs = true; n = 1; f = 1.5; b = true; l = [ 1 "two" null ]; s = { a.b = "c"; }; dep = foo; }`},
		{"structured-attrs-multi", `mk { name = "structured-multi"; __structuredAttrs = true; outputs = [ "out" "doc" ]; x = "y"; }`},
		{"pass-as-file", `mk { name = "paf"; passAsFile = [ "big" "other" ]; big = "lots of text"; other = "x"; }`},
		{"unicode", `mk { name = "unicode"; chars = "ÅÄÖ 🦀 λ"; args = [ "€" ]; }`},
		{"unicode-vector", "mk { name = \"unicode\"; letters = ''\n    räksmörgås\n    rødgrød med fløde\n    Lübeck\n    肥猪\n    こんにちは / 今日は\n    🌮\n  ''; }"},
		{"latin1", "mk { name = \"latin1\"; chars = \"\xc5\xc4\xd6\"; }"},
		{"cp1252", "mk { name = \"cp1252\"; chars = \"\x80\x9f\xff\"; }"},
		{"escapes", `mk { name = "escapes"; v = "a\nb\tc\rd\"e\\f$g''h"; args = [ "x\ny" "\"q\"" "\\" ]; builder = "/bin/\"sh\""; }`},
		{"control-bytes", "mk { name = \"ctl\"; v = \"\x01\x02\x08\x0c\x1b\x7f\"; }"},
		{"nested-json", `mk { name = "nested-json"; json = builtins.toJSON { hello = "moto\n"; }; }`},
		{"coercions", `mk { name = "coerce"; t = true; f = false; n = null; i = 42; l = [ "a" 1 true null [ "b" ] ]; p = 3.25; }`},
		{"ignore-nulls", `mk { name = "nulls"; __ignoreNulls = true; n = null; k = "kept"; }`},
		{"env-key-odd", `mk { name = "oddkeys"; "a b" = "1"; "x\"y" = "2"; "t\tz" = "3"; "" = "empty"; }`},
		{"empty-values", `mk { name = "empty"; e = ""; args = [ "" ]; }`},
		{"name-chars", `mk { name = "a.b-c_d+e?f=g"; }`},
		{"system-odd", `mk { name = "sys"; system = "x86_64-linux"; }`},
		{"input-src-tofile", `mk { name = "src"; script = text; }`},
		{"input-src-path", `mk { name = "pathsrc"; f = ./data.txt; d = ./tree; }`},
		{"input-src-builder", `mk { name = "srcbuilder"; builder = ./tree/run.sh; }`},
		{"drvpath-context", `mk { name = "drvctx"; d = c1.drvPath; }`},
		{"discard-output-dep", `mk { name = "discard"; d = builtins.unsafeDiscardOutputDependency c2.drvPath; }`},
		{"placeholder", `mk { name = "ph"; outputs = [ "out" "bin" ]; p = builtins.placeholder "bin"; q = builtins.placeholder "out"; }`},
		{"builder-from-drv", `mk { name = "usesh"; builder = "${c1}/bin/sh"; }`},
		{"many-args", `mk { name = "many"; args = builtins.genList (i: "arg${toString i}") 50; }`},
		{"tofile-ref", `mk { name = "tfref"; f = builtins.toFile "ref.txt" "see ${text}"; }`},
		{"fod-dep-chain", `mk { name = "fodchain"; a = fodA; c = c3; m = multi.dev; }`},
	}
}

// TestOracleNixInstantiate has C++ Nix instantiate every expression, then
// checks that parsing each .drv it wrote (and every input .drv) and printing
// it again gives the same bytes, and that the output paths, the .drv path
// and `nix show-derivation` JSON are reproduced exactly.
func TestOracleNixInstantiate(t *testing.T) {
	nixtest.Require(t)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "tree"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"data.txt": "data\n", "tree/run.sh": "#!/bin/sh\necho hi\n", "tree/a": "a"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cases := oracleCases()
	if len(cases) < 40 {
		t.Fatalf("only %d oracle cases", len(cases))
	}
	s16, _, _, _ := hashForms("sha256")
	var expr strings.Builder
	fmt.Fprintf(&expr, "let\n"+oraclePrelude+"in [\n", s16)
	for _, c := range cases {
		fmt.Fprintf(&expr, "  (%s) # %s\n", c.expr, c.name)
	}
	expr.WriteString("]\n")
	if err := os.WriteFile(filepath.Join(dir, "default.nix"), []byte(expr.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := strings.Fields(string(nixtest.RunIn(t, dir, "nix-instantiate", "default.nix")))
	if len(out) != len(cases) {
		t.Fatalf("nix-instantiate printed %d paths for %d expressions", len(out), len(cases))
	}

	read := func(p string) ([]byte, error) { return os.ReadFile(p) }
	lookup := NewModuloCache(read)
	all := map[string]*Derivation{}
	var visit func(caseName, drvPath string)
	visit = func(caseName, drvPath string) {
		if _, done := all[drvPath]; done {
			return
		}
		data, err := os.ReadFile(drvPath)
		if err != nil {
			t.Fatalf("%s: %v", caseName, err)
		}
		d, err := Parse(data)
		if err != nil {
			t.Fatalf("%s: parse %s: %v\n%s", caseName, drvPath, err, data)
		}
		all[drvPath] = d
		if got := d.ATerm(); !bytes.Equal(got, data) {
			t.Errorf("%s: %s re-printed differently:\n got %q\nwant %q", caseName, drvPath, got, data)
		}
		if err := d.Validate(); err != nil {
			t.Errorf("%s: %s: Validate: %v", caseName, drvPath, err)
		}
		name, err := d.Name()
		if err != nil {
			t.Errorf("%s: %s: %v", caseName, drvPath, err)
		}
		if !strings.HasSuffix(drvPath, "-"+name+".drv") {
			t.Errorf("%s: %s: env name %q does not match the path", caseName, drvPath, name)
		}
		sp, err := d.DrvPath(name)
		if err != nil || sp.String() != drvPath {
			t.Errorf("%s: DrvPath = %v, %v; want %s", caseName, sp, err, drvPath)
		}
		c := d.Clone()
		if err := c.CalculateOutputPaths(name, lookup); err != nil {
			t.Errorf("%s: CalculateOutputPaths: %v", caseName, err)
		} else {
			if !reflect.DeepEqual(c.Outputs, d.Outputs) {
				t.Errorf("%s: outputs\n got %v\nwant %v", caseName, c.Outputs, d.Outputs)
			}
			if !maps.Equal(c.Env, d.Env) {
				t.Errorf("%s: env after CalculateOutputPaths\n got %q\nwant %q", caseName, c.Env, d.Env)
			}
		}
		for in := range d.InputDerivations {
			visit(caseName, in)
		}
	}
	// Published vectors (nix-compat) among the cases.
	vectors := map[string]string{
		"bar-vector":     "/nix/store/0hm2f1psjpcwg8fijsmr4wwxrx59s092-bar.drv",
		"foo-vector":     "/nix/store/4wvvbi4jwn0prsdxb7vs673qa5h9gr7x-foo.drv",
		"unicode-vector": "/nix/store/52a9id8hx688hvlnz4d1n25ml1jdykz0-unicode.drv",
		"nested-json":    "/nix/store/292w8yzv5nn7nhdpxcs8b7vby2p27s09-nested-json.drv",
	}
	for i, c := range cases {
		p, _, _ := strings.Cut(out[i], "!")
		if want, ok := vectors[c.name]; ok && p != want {
			t.Errorf("%s: nix-instantiate gave %s, the published vector is %s", c.name, p, want)
		}
		visit(c.name, p)
	}
	t.Logf("%d expressions, %d distinct .drv files checked against nix-instantiate", len(cases), len(all))

	var got bytes.Buffer
	if err := WriteJSON(&got, all); err != nil {
		t.Fatal(err)
	}
	want := nixtest.RunIn(t, dir, "nix", append([]string{"show-derivation"}, sortedKeys(all)...)...)
	if !bytes.Equal(got.Bytes(), want) {
		gl, wl := strings.Split(got.String(), "\n"), strings.Split(string(want), "\n")
		for i := range min(len(gl), len(wl)) {
			if gl[i] != wl[i] {
				t.Fatalf("JSON differs from nix show-derivation at line %d:\n got %q\nwant %q", i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("JSON differs from nix show-derivation in length: %d vs %d lines", len(gl), len(wl))
	}
}
