package derivation

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
)

const fooDrv = "testdata/4wvvbi4jwn0prsdxb7vs673qa5h9gr7x-foo.drv"

func TestParseErrors(t *testing.T) {
	foo, err := os.ReadFile(fooDrv)
	if err != nil {
		t.Fatal(err)
	}
	const empty = `Derive([],[],[],"","",[],[])`
	tests := []struct {
		name, in, want string
	}{
		{"empty input", ``, `expected "Derive("`},
		{"not a derivation", `Foo()`, `expected "Derive("`},
		{"trailing data", string(foo) + "\n", "1 bytes of trailing data"},
		{"trailing junk", empty + "x", "trailing data"},
		{"truncated", string(foo[:len(foo)-2]), "expected"},
		{"unterminated string", `Derive([("out`, "unterminated string"},
		{"unterminated escape", `Derive([("out\`, "unterminated string"},
		{"duplicate env key", `Derive([],[],[],"","",[],[("a","1"),("a","2")])`, `duplicate env key "a"`},
		{"duplicate output", `Derive([("out","","",""),("out","","","")],[],[],"","",[],[])`, `duplicate output "out"`},
		{"duplicate input drv", `Derive([],[("/nix/store/0hm2f1psjpcwg8fijsmr4wwxrx59s092-bar.drv",["out"]),("/nix/store/0hm2f1psjpcwg8fijsmr4wwxrx59s092-bar.drv",["out"])],[],"","",[],[])`, "duplicate input derivation"},
		{"duplicate input drv output", `Derive([],[("/nix/store/0hm2f1psjpcwg8fijsmr4wwxrx59s092-bar.drv",["out","out"])],[],"","",[],[])`, `duplicate output of`},
		{"duplicate input src", `Derive([],[],["/nix/store/0hm2f1psjpcwg8fijsmr4wwxrx59s092-bar","/nix/store/0hm2f1psjpcwg8fijsmr4wwxrx59s092-bar"],"","",[],[])`, "duplicate input source"},
		{"bad input src", `Derive([],[],["/tmp/x"],"","",[],[])`, "input source"},
		{"bad input drv", `Derive([],[("bar.drv",["out"])],[],"","",[],[])`, "input derivation"},
		{"bad output path", `Derive([("out","/nix/store/x","","")],[],[],"","",[],[])`, `output "out"`},
		{"missing comma", `Derive([][],[],"","",[],[])`, `expected ","`},
		{"output tuple too short", `Derive([("out","")],[],[],"","",[],[])`, `expected ","`},
		{"unquoted", `Derive([],[],[],x,"",[],[])`, `expected "\""`},
		{"duplicate (nix-compat fixture)", strings.Replace(string(foo), `("name","foo")`, `("name","foo"),("name","bar")`, 1), `duplicate env key "name"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Parse([]byte(tt.in))
			if err == nil {
				t.Fatalf("parsed %+v, want error containing %q", d, tt.want)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a *ParseError", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
		})
	}
	if _, err := Parse([]byte(empty)); err != nil {
		t.Fatalf("empty derivation: %v", err)
	}
}

func TestATermEscaping(t *testing.T) {
	d := New()
	d.System = "x86_64-linux"
	d.Builder = "/bin/\"sh\""
	d.Args = []string{"a\\b", "c\nd", "\r\t", "\xff\x00raw"}
	d.Env["k\"ey"] = "v\\al\n\xc5"
	d.Outputs["out"] = Output{Path: "/nix/store/4q0pg5zpfmznxscq3avycvf9xdvx50n3-bar"}
	want := `Derive([("out","/nix/store/4q0pg5zpfmznxscq3avycvf9xdvx50n3-bar","","")],[],[],"x86_64-linux","/bin/\"sh\"",["a\\b","c\nd","\r\t","` + "\xff\x00raw" + `"],[("k\"ey","v\\al\n` + "\xc5" + `")])`
	got := d.ATerm()
	if string(got) != want {
		t.Fatalf("ATerm\n got %q\nwant %q", got, want)
	}
	back, err := Parse(got)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, d) {
		t.Fatalf("round trip:\n got %#v\nwant %#v", back, d)
	}
}

func TestParseUnescapesLikeNix(t *testing.T) {
	// Nix reads a backslash before any other byte as that byte.
	d, err := Parse([]byte(`Derive([],[],[],"s","b",["\a\\\q"],[])`))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{`a\q`}; !reflect.DeepEqual(d.Args, want) {
		t.Fatalf("args = %q, want %q", d.Args, want)
	}
}

func TestATermSortsAndDedups(t *testing.T) {
	d := New()
	d.Outputs["z"] = Output{}
	d.Outputs["a"] = Output{}
	d.InputDerivations["/nix/store/ss2p4wmxijn652haqyd7dckxwl4c7hxx-bar.drv"] = []string{"z", "a", "a"}
	d.InputDerivations["/nix/store/0hm2f1psjpcwg8fijsmr4wwxrx59s092-bar.drv"] = []string{"out"}
	d.InputSources = []string{"/nix/store/4q0pg5zpfmznxscq3avycvf9xdvx50n3-bar", "/nix/store/0hm2f1psjpcwg8fijsmr4wwxrx59s092-bar", "/nix/store/4q0pg5zpfmznxscq3avycvf9xdvx50n3-bar"}
	d.Env["b"], d.Env["B"], d.Env["a"] = "1", "2", "3"
	want := `Derive([("a","","",""),("z","","","")],[("/nix/store/0hm2f1psjpcwg8fijsmr4wwxrx59s092-bar.drv",["out"]),("/nix/store/ss2p4wmxijn652haqyd7dckxwl4c7hxx-bar.drv",["a","z"])],["/nix/store/0hm2f1psjpcwg8fijsmr4wwxrx59s092-bar","/nix/store/4q0pg5zpfmznxscq3avycvf9xdvx50n3-bar"],"","",[],[("B","2"),("a","3"),("b","1")])`
	if got := d.ATerm(); string(got) != want {
		t.Fatalf("ATerm\n got %s\nwant %s", got, want)
	}
}

func TestWriteJSON(t *testing.T) {
	data, err := os.ReadFile(fooDrv)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	d.Env["ctl"] = "a\x01\x1f\x7f\"\\\n\r\t\xc5"
	var b bytes.Buffer
	if err := WriteJSON(&b, map[string]*Derivation{"/nix/store/4wvvbi4jwn0prsdxb7vs673qa5h9gr7x-foo.drv": d}); err != nil {
		t.Fatal(err)
	}
	want := `{
  "/nix/store/4wvvbi4jwn0prsdxb7vs673qa5h9gr7x-foo.drv": {
    "outputs": {
      "out": {
        "path": "/nix/store/5vyvcwah9l9kf07d52rcgdk70g2f4y13-foo"
      }
    },
    "inputSrcs": [],
    "inputDrvs": {
      "/nix/store/0hm2f1psjpcwg8fijsmr4wwxrx59s092-bar.drv": [
        "out"
      ]
    },
    "system": ":",
    "builder": ":",
    "args": [],
    "env": {
      "bar": "/nix/store/4q0pg5zpfmznxscq3avycvf9xdvx50n3-bar",
      "builder": ":",
      "ctl": "a\u0001\u001f` + "\x7f" + `\"\\\n\r\t` + "\xc5" + `",
      "name": "foo",
      "out": "/nix/store/5vyvcwah9l9kf07d52rcgdk70g2f4y13-foo",
      "system": ":"
    }
  }
}
`
	if b.String() != want {
		t.Fatalf("JSON\n got %s\nwant %s", b.String(), want)
	}
}

func TestValidate(t *testing.T) {
	const out = "/nix/store/5vyvcwah9l9kf07d52rcgdk70g2f4y13-foo"
	ok := func() *Derivation {
		d := New()
		d.System, d.Builder = "x86_64-linux", "/bin/sh"
		d.Env["name"] = "foo"
		d.Outputs["out"] = Output{Path: out}
		return d
	}
	if err := ok().Validate(); err != nil {
		t.Fatalf("valid derivation: %v", err)
	}
	tests := []struct {
		name   string
		modify func(d *Derivation)
		want   string
	}{
		{"no name", func(d *Derivation) { delete(d.Env, "name") }, "required attribute 'name' missing"},
		{"drv name", func(d *Derivation) { d.Env["name"] = "x.drv" }, "derivation names are not allowed to end in '.drv'"},
		{"bad name", func(d *Derivation) { d.Env["name"] = "a b" }, "invalid character"},
		{"no system", func(d *Derivation) { d.System = "" }, "required attribute 'system' missing"},
		{"no builder", func(d *Derivation) { d.Builder = "" }, "required attribute 'builder' missing"},
		{"no outputs", func(d *Derivation) { d.Outputs = map[string]Output{} }, "at least one output"},
		{"output drv", func(d *Derivation) { d.Outputs["drv"] = Output{} }, "invalid derivation output name 'drv'"},
		{"output bad char", func(d *Derivation) { d.Outputs["a/b"] = Output{} }, "invalid derivation output name 'a/b'"},
		{"output path", func(d *Derivation) { d.Outputs["out"] = Output{Path: "/tmp/x"} }, `output "out"`},
		{"hash without algo", func(d *Derivation) { d.Outputs["out"] = Output{Hash: "00"} }, "no hash algorithm"},
		{"unknown algo", func(d *Derivation) { d.Outputs["out"] = Output{HashAlgo: "r:sha3", Hash: "00"} }, `unknown hash algorithm "r:sha3"`},
		{"floating", func(d *Derivation) { d.Outputs["out"] = Output{HashAlgo: "sha256"} }, "floating"},
		{"short hash", func(d *Derivation) { d.Outputs["out"] = Output{HashAlgo: "sha256", Hash: "abcd"} }, "hash 'abcd' has wrong length for hash type 'sha256'"},
		{"upper hex", func(d *Derivation) {
			d.Outputs["out"] = Output{HashAlgo: "sha1", Hash: strings.Repeat("A", 40)}
		}, "wrong length for hash type 'sha1'"},
		{"fixed plus other output", func(d *Derivation) {
			d.Outputs["out"] = Output{HashAlgo: "sha1", Hash: strings.Repeat("a", 40)}
			d.Outputs["dev"] = Output{}
		}, "multiple outputs are not supported in fixed-output derivations"},
		{"fixed not out", func(d *Derivation) {
			d.Outputs = map[string]Output{"bin": {HashAlgo: "sha1", Hash: strings.Repeat("a", 40)}}
		}, "multiple outputs are not supported in fixed-output derivations"},
		{"input drv not .drv", func(d *Derivation) {
			d.InputDerivations["/nix/store/4q0pg5zpfmznxscq3avycvf9xdvx50n3-bar"] = []string{"out"}
		}, "does not end in .drv"},
		{"input drv no outputs", func(d *Derivation) {
			d.InputDerivations["/nix/store/0hm2f1psjpcwg8fijsmr4wwxrx59s092-bar.drv"] = nil
		}, "has no outputs"},
		{"input src", func(d *Derivation) { d.InputSources = []string{"/nix/store/short"} }, "input source"},
		{"structured attrs bad json", func(d *Derivation) {
			delete(d.Env, "name")
			d.Env["__json"] = "{"
		}, "structured attrs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := ok()
			tt.modify(d)
			err := d.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func TestNameFromStructuredAttrs(t *testing.T) {
	d := New()
	d.Env["__json"] = `{"builder":":","name":"structured-attrs","system":":"}`
	if n, err := d.Name(); err != nil || n != "structured-attrs" {
		t.Fatalf("Name() = %q, %v", n, err)
	}
}

// TestATermSHA256Spills checks the streamed hash against the hash of the
// whole ATerm where the writer hands bytes on in pieces: ATerms just
// under, at and past the spill size, many inputs, and strings that are
// larger than a spill by themselves.
func TestATermSHA256Spills(t *testing.T) {
	for _, tc := range []struct {
		name   string
		inputs int
		envLen int
	}{
		{"small", 1, 10},
		{"under-spill", 0, atermSpill - 400},
		{"at-spill", 0, atermSpill},
		{"one-huge-value", 0, 5*atermSpill + 7},
		{"many-inputs", 3000, 0},
		{"both", 700, 3 * atermSpill},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := New()
			d.Outputs["out"] = Output{Path: "/nix/store/4wvvbi4jwn0prsdxb7vs673qa5h9gr7x-x"}
			d.System, d.Builder = "x86_64-linux", "/bin/sh"
			for i := range tc.inputs {
				p := fmt.Sprintf("/nix/store/%032d-dep%d.drv", i, i)
				d.InputDerivations[p] = []string{"out", "dev"}
			}
			d.Env["big"] = strings.Repeat("a\"\\\n", tc.envLen/4) + strings.Repeat("b", tc.envLen%4)
			want := sha256.Sum256(d.ATerm())
			if got := d.ATermSHA256(); got != want {
				t.Fatalf("streamed hash %x, hash of the ATerm %x", got, want)
			}
			// the recycled writer starts clean
			if got := d.ATermSHA256(); got != want {
				t.Fatalf("second streamed hash %x, want %x", got, want)
			}
		})
	}
}
