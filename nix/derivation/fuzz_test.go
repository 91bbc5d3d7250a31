package derivation

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzParse checks the parser never panics and that whatever it accepts
// prints back to something it parses to the same derivation. Printing is
// canonical, so printing that again must give the same bytes.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.drv")
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`Derive([],[],[],"","",[],[])`))
	f.Add([]byte(`Derive([("out","","","")],[],[],"s","b\\\"\n",["\a"],[("k","v\t")])`))
	f.Add([]byte(`Derive([],[],[],"","",[],[("a","1"),("a","2")])`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse(data)
		if err != nil {
			return
		}
		if got, want := d.ATermSHA256(), sha256.Sum256(d.ATerm()); got != want {
			t.Fatalf("streamed ATerm hash %x, hash of the ATerm %x", got, want)
		}
		// Nix writes these fields unescaped, so only values without quote,
		// backslash or the escaped control bytes survive a round trip.
		if !rawSafe(d) {
			return
		}
		printed := d.ATerm()
		d2, err := Parse(printed)
		if err != nil {
			t.Fatalf("re-parse of %q: %v", printed, err)
		}
		if !reflect.DeepEqual(normalise(d), normalise(d2)) {
			t.Fatalf("round trip changed the derivation:\n%#v\n%#v", d, d2)
		}
		if again := d2.ATerm(); !bytes.Equal(again, printed) {
			t.Fatalf("printing is not canonical:\n%q\n%q", printed, again)
		}
	})
}

func rawSafe(d *Derivation) bool {
	bad := func(s string) bool { return bytes.ContainsAny([]byte(s), "\"\\") }
	if bad(d.System) {
		return false
	}
	for k, o := range d.Outputs {
		if bad(k) || bad(o.Path) || bad(o.HashAlgo) || bad(o.Hash) {
			return false
		}
	}
	for _, outs := range d.InputDerivations {
		for _, o := range outs {
			if bad(o) {
				return false
			}
		}
	}
	return true
}

// normalise makes nil and empty slices compare equal and sorts what the
// printer sorts.
func normalise(d *Derivation) *Derivation {
	c := d.Clone()
	c.InputSources = sortedSet(c.InputSources)
	for k, v := range c.InputDerivations {
		c.InputDerivations[k] = sortedSet(v)
	}
	if len(c.InputSources) == 0 {
		c.InputSources = nil
	}
	if len(c.Args) == 0 {
		c.Args = nil
	}
	return c
}
