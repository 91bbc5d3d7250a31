package derivation

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"github.com/tvix-go/tvix/nix/storepath"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// testdataModulo computes modulo hashes of inputs from the .drv files in
// testdata, which nix-instantiate wrote.
var testdataModulo = NewModuloCache(func(p string) ([]byte, error) {
	return os.ReadFile(filepath.Join("testdata", filepath.Base(p)))
})

// TestVectorFiles parses every .drv in testdata (written by nix-instantiate
// for the published nix-compat vectors) and reproduces its bytes, its path
// and its output paths.
func TestVectorFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/*.drv")
	if err != nil || len(files) < 10 {
		t.Fatalf("want the 10 vector .drv files in testdata, got %d (%v)", len(files), err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			d, err := Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			if got := d.ATerm(); string(got) != string(data) {
				t.Fatalf("re-printed:\n got %q\nwant %q", got, data)
			}
			if err := d.Validate(); err != nil {
				t.Fatal(err)
			}
			name, err := d.Name()
			if err != nil {
				t.Fatal(err)
			}
			sp, err := d.DrvPath(name)
			if err != nil || sp.Basename() != filepath.Base(f) {
				t.Fatalf("DrvPath = %v, %v; want %s", sp, err, filepath.Base(f))
			}
			c := d.Clone()
			if err := c.CalculateOutputPaths(name, testdataModulo); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c, d) {
				t.Fatalf("CalculateOutputPaths:\n got %+v\nwant %+v", c, d)
			}
			// the combined form: the same paths, and the modulo hash of the result
			c2 := d.Clone()
			hdm, err := c2.CalculateOutputPathsModulo(name, testdataModulo)
			want, werr := d.HashDerivationModulo(testdataModulo)
			if err != nil || werr != nil || hdm != want || !reflect.DeepEqual(c2, d) {
				t.Fatalf("CalculateOutputPathsModulo = %x, %v; want %x, %v (derivation equal: %v)", hdm, err, want, werr, reflect.DeepEqual(c2, d))
			}
			if refs, err := d.References(); err != nil || len(refs) != len(d.ReferencePaths()) {
				t.Fatalf("References = %v, %v; ReferencePaths %v", refs, err, d.ReferencePaths())
			}
			h := d.ATermSHA256()
			viaPaths, err := storepath.MakeTextPaths(name+".drv", h[:], d.ReferencePaths())
			if err != nil || viaPaths != sp {
				t.Fatalf("MakeTextPaths(ReferencePaths) = %v, %v; want %v", viaPaths, err, sp)
			}
		})
	}
}

func TestVectorModuloHashes(t *testing.T) {
	for file, want := range map[string]string{
		"0hm2f1psjpcwg8fijsmr4wwxrx59s092-bar.drv": "724f3e3634fce4cbbbd3483287b8798588e80280660b9a63fd13a1bc90485b33",
		"ss2p4wmxijn652haqyd7dckxwl4c7hxx-bar.drv": "c79aebd0ce3269393d4a1fde2cbd1d975d879b40f0bf40a48f550edc107fd5df",
	} {
		h, err := testdataModulo("/nix/store/" + file)
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(h[:]); got != want {
			t.Errorf("%s: hashDerivationModulo = %s, want %s", file, got, want)
		}
	}
}

// basic mirrors `derivation { name = "foo"; builder = "/bin/sh"; system =
// "x86_64-linux"; }` plus extra env entries, before output paths are set.
func basic(env map[string]string, outputs ...string) *Derivation {
	d := New()
	d.Builder, d.System = "/bin/sh", "x86_64-linux"
	d.Env["name"], d.Env["builder"], d.Env["system"] = "foo", "/bin/sh", "x86_64-linux"
	for k, v := range env {
		d.Env[k] = v
	}
	if len(outputs) == 0 {
		outputs = []string{"out"}
	}
	for _, o := range outputs {
		d.Outputs[o] = Output{}
	}
	return d
}

// TestVectorHandBuilt reproduces the glue vectors of Tvix (derivations built
// by hand the way derivationStrict builds them).
func TestVectorHandBuilt(t *testing.T) {
	sri, _ := base64.StdEncoding.DecodeString("Q3QXOoy+iN4VK2CflvRulYvPZXYgF0dO7FoF7CvWFTA=")
	fodHex := hex.EncodeToString(sri)
	fod := func(mode, algo string) *Derivation {
		env := map[string]string{"outputHash": fodHex, "outputHashAlgo": "sha256"}
		if mode != "" {
			env["outputHashMode"] = mode
		}
		d := basic(env)
		d.Outputs["out"] = Output{HashAlgo: algo, Hash: fodHex}
		return d
	}
	withArgs := basic(nil)
	withArgs.Args = []string{"--foo", "42", "--bar"}
	tests := []struct {
		name   string
		d      *Derivation
		output string
		want   string
	}{
		{"plain", basic(nil), "out", "/nix/store/xpcvxsx5sw4rbq666blz6sxqlmsqphmr-foo"},
		{"args", withArgs, "out", "/nix/store/365gi78n2z7vwc1bvgb98k0a9cqfp6as-foo"},
		{"outputs", basic(map[string]string{"outputs": "foo bar"}, "foo", "bar"), "foo", "/nix/store/hkwdinvz2jpzgnjy9lv34d2zxvclj4s3-foo-foo"},
		{"fod-recursive", fod("recursive", "r:sha256"), "out", "/nix/store/17wgs52s7kcamcyin4ja58njkf91ipq8-foo"},
		{"fod-flat", fod("flat", "sha256"), "out", "/nix/store/q4pkwkxdib797fhk22p0k3g1q32jmxvf-foo"},
		{"fod-mode-omitted", fod("", "sha256"), "out", "/nix/store/q4pkwkxdib797fhk22p0k3g1q32jmxvf-foo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.d.CalculateOutputPaths("foo", nil); err != nil {
				t.Fatal(err)
			}
			if got := tt.d.Outputs[tt.output].Path; got != tt.want {
				t.Errorf("output %s = %s, want %s", tt.output, got, tt.want)
			}
			if got := tt.d.Env[tt.output]; got != tt.want {
				t.Errorf("env %s = %s, want %s", tt.output, got, tt.want)
			}
			if err := tt.d.Validate(); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestHandBuiltChain builds foo (depending on the bar vector) in Go and
// checks the published output and .drv paths.
func TestHandBuiltChain(t *testing.T) {
	bar := New()
	bar.System, bar.Builder = ":", ":"
	bar.Env = map[string]string{"builder": ":", "name": "bar", "system": ":", "outputHash": "08813cbee9903c62be4c5027726a418a300da4500b2d369d3af9286f4815ceba", "outputHashAlgo": "sha256", "outputHashMode": "recursive"}
	bar.Outputs["out"] = Output{HashAlgo: "r:sha256", Hash: bar.Env["outputHash"]}
	if err := bar.CalculateOutputPaths("bar", nil); err != nil {
		t.Fatal(err)
	}
	if got, want := bar.Outputs["out"].Path, "/nix/store/4q0pg5zpfmznxscq3avycvf9xdvx50n3-bar"; got != want {
		t.Fatalf("bar out = %s, want %s", got, want)
	}
	barPath, err := bar.DrvPath("bar")
	if err != nil || barPath.String() != "/nix/store/0hm2f1psjpcwg8fijsmr4wwxrx59s092-bar.drv" {
		t.Fatalf("bar drv = %v, %v", barPath, err)
	}
	barHash, err := bar.HashDerivationModulo(nil)
	if err != nil {
		t.Fatal(err)
	}

	foo := New()
	foo.System, foo.Builder = ":", ":"
	foo.Env = map[string]string{"builder": ":", "name": "foo", "system": ":", "bar": bar.Outputs["out"].Path}
	foo.Outputs["out"] = Output{}
	foo.InputDerivations[barPath.String()] = []string{"out"}
	lookup := func(p string) ([32]byte, error) {
		if p != barPath.String() {
			return [32]byte{}, errors.New("unexpected input " + p)
		}
		return barHash, nil
	}
	if err := foo.CalculateOutputPaths("foo", lookup); err != nil {
		t.Fatal(err)
	}
	if got, want := foo.Outputs["out"].Path, "/nix/store/5vyvcwah9l9kf07d52rcgdk70g2f4y13-foo"; got != want {
		t.Fatalf("foo out = %s, want %s", got, want)
	}
	fooPath, err := foo.DrvPath("foo")
	if err != nil || fooPath.String() != "/nix/store/4wvvbi4jwn0prsdxb7vs673qa5h9gr7x-foo.drv" {
		t.Fatalf("foo drv = %v, %v", fooPath, err)
	}
	// A failing lookup is reported with the input it was for.
	_, err = foo.HashDerivationModulo(func(string) ([32]byte, error) { return [32]byte{}, errors.New("boom") })
	if err == nil || !strings.Contains(err.Error(), barPath.String()) {
		t.Fatalf("lookup error = %v", err)
	}
}
