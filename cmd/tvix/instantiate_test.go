package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tvix-go/tvix/internal/nixtest"
)

// TestInstantiateWritesDrvsLikeNix: tvix instantiate prints the .drv path
// nix-instantiate prints, and the .drv and the source it pulled in are in
// the tvix store with the bytes Nix wrote.
func TestInstantiateWritesDrvsLikeNix(t *testing.T) {
	nixtest.Require(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "src.txt"), []byte("source "+dir+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "default.nix"), []byte(`
let dep = derivation { name = "dep"; builder = "/bin/sh"; system = "x86_64-linux"; src = ./src.txt; };
in { foo = derivation { name = "foo"; builder = "/bin/sh"; system = "x86_64-linux"; inherit dep; args = [ "-c" "echo ${dep}" ]; outputs = [ "out" "dev" ]; }; }
`), 0o644)
	env := []string{"XDG_DATA_HOME=" + t.TempDir()}
	out, stderr, err := run(t, env, "instantiate", filepath.Join(dir, "default.nix"), "-A", "foo")
	if err != nil {
		t.Fatalf("%v %s", err, stderr)
	}
	want := nixtest.Text(t, "nix-instantiate", filepath.Join(dir, "default.nix"), "-A", "foo")
	if strings.TrimSpace(out) != want {
		t.Fatalf("tvix instantiate = %q, nix-instantiate = %q", out, want)
	}
	for _, p := range strings.Fields(nixtest.Text(t, "nix-store", "-qR", want)) {
		got, stderr, err := run(t, env, "store", "dump", p)
		if err != nil {
			t.Fatalf("%s not in the tvix store: %v %s", p, err, stderr)
		}
		if got != string(nixtest.Run(t, "nix-store", "--dump", p)) {
			t.Fatalf("NAR of %s differs from what Nix wrote", p)
		}
	}
	// --eval and --readonly-mode write nothing.
	env2 := []string{"XDG_DATA_HOME=" + t.TempDir()}
	if out, stderr, err := run(t, env2, "instantiate", "--readonly-mode", filepath.Join(dir, "default.nix"), "-A", "foo"); err != nil || strings.TrimSpace(out) != want {
		t.Fatalf("--readonly-mode = %q %v %s", out, err, stderr)
	}
	if out, _, _ := run(t, env2, "store", "ls"); strings.TrimSpace(out) != "" {
		t.Fatalf("--readonly-mode wrote %s", out)
	}
	toFile := `builtins.toFile "x.nix" "1 + 1"`
	if out, stderr, err := run(t, env2, "instantiate", "--eval", "-E", toFile); err != nil || strings.TrimSpace(out) == "" {
		t.Fatalf("--eval toFile = %q %v %s", out, err, stderr)
	}
	if out, _, _ := run(t, env2, "store", "ls"); strings.TrimSpace(out) != "" {
		t.Fatalf("--eval wrote %s", out)
	}
	// --eval --read-write-mode writes (nixpkgs' modules.sh imports a
	// toFile result that way), and what it wrote reads back at once.
	if out, stderr, err := run(t, env2, "instantiate", "--eval", "--read-write-mode", "-E", "import ("+toFile+")"); err != nil || strings.TrimSpace(out) != "2" {
		t.Fatalf("--eval --read-write-mode import of toFile = %q %v %s", out, err, stderr)
	}
	if out, _, _ := run(t, env2, "store", "ls"); !strings.Contains(out, "-x.nix") {
		t.Fatalf("--eval --read-write-mode did not store the file: %q", out)
	}
}
