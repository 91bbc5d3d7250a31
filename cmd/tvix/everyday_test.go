package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestNixInstantiateVersionAndEvalHelp: the nix-instantiate symlink answers
// --version as scripts probe it, and each evaluator command's --help names
// the command the user typed.
func TestNixInstantiateVersionAndEvalHelp(t *testing.T) {
	link := filepath.Join(t.TempDir(), "nix-instantiate")
	if err := os.Symlink(tvixBinary(t), link); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(link, "--version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "nix-instantiate (tvix) ") {
		t.Fatalf("nix-instantiate --version = %q, %v", out, err)
	}
	for _, c := range []struct{ cmd, want string }{
		{"eval", "usage: tvix eval "}, {"instantiate", "usage: tvix instantiate "},
	} {
		out, stderr, err := run(t, nil, c.cmd, "--help")
		if err != nil || !strings.HasPrefix(out, c.want) {
			t.Errorf("tvix %s --help = %q (%s), %v; want it to start %q", c.cmd, out, stderr, err, c.want)
		}
	}
	if out, _, _ := run(t, nil, "eval", "--help"); !strings.Contains(out, "evaluate and print (implied here)") {
		t.Errorf("tvix eval --help does not say --eval is implied:\n%s", out)
	}
}
