package nixhash

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tvix-go/tvix/internal/nixtest"
	"github.com/tvix-go/tvix/nix/nar"
	"github.com/tvix-go/tvix/nix/storepath"
)

// TestStorePathsAgainstNix computes the paths of nix-store --add-fixed
// (flat and --recursive, every algorithm) and builtins.toFile (with and
// without references) from content addresses, and compares them with Nix.
func TestStorePathsAgainstNix(t *testing.T) {
	nixtest.Require(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "fixed-file")
	if err := os.WriteFile(file, []byte("fixed output contents\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(dir, "fixed-tree")
	if err := os.MkdirAll(filepath.Join(tree, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "sub", "x"), []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("sub/x", filepath.Join(tree, "link")); err != nil {
		t.Fatal(err)
	}
	contents, _ := os.ReadFile(file)
	narOf := func(p string) []byte {
		var b bytes.Buffer
		if err := nar.DumpPath(&b, p); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	for _, algo := range []Algo{MD5, SHA1, SHA256, SHA512} {
		for _, tc := range []struct {
			path      string
			recursive bool
			data      []byte
		}{
			{file, false, contents},
			{file, true, narOf(file)},
			{tree, true, narOf(tree)},
		} {
			m := Flat
			args := []string{"--add-fixed"}
			if tc.recursive {
				m = Recursive
				args = append(args, "--recursive")
			}
			ca := CA{Method: m, Hash: Sum(algo, tc.data)}
			want, err := ca.StorePath(filepath.Base(tc.path), nil, false)
			if err != nil {
				t.Fatal(err)
			}
			got := nixtest.Text(t, "nix-store", append(args, algo.String(), tc.path)...)
			if got != want.String() {
				t.Errorf("%s %v: Nix %s, ours %s", tc.path, ca, got, want)
			}
		}
	}

	a := CA{Method: Text, Hash: Sum(SHA256, []byte("first"))}
	ap, err := a.StorePath("tofile-a", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	bText := "refers to " + ap.String()
	bp, err := CA{Method: Text, Hash: Sum(SHA256, []byte(bText))}.StorePath("tofile-b", []storepath.StorePath{ap}, false)
	if err != nil {
		t.Fatal(err)
	}
	got := nixtest.Text(t, "nix-instantiate", "--eval", "--strict", "--read-write-mode", "-E",
		`let a = builtins.toFile "tofile-a" "first"; in [ a (builtins.toFile "tofile-b" "refers to ${a}") ]`)
	want := `[ "` + ap.String() + `" "` + bp.String() + `" ]`
	if got != want {
		t.Errorf("toFile: Nix %s, ours %s", got, want)
	}
	if !strings.Contains(nixtest.Text(t, "nix-store", "--query", "--references", bp.String()), ap.String()) {
		t.Errorf("Nix does not record %s as a reference of %s", ap, bp)
	}
}
