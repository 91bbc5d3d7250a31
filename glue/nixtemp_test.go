package glue

import (
	"os"
	"path/filepath"
	"testing"
)

// Nix 2.8 puts a build's temporary directory, which its structured-attrs
// variables name, under TMPDIR with links resolved, or /tmp.
func TestNixTempRoot(t *testing.T) {
	real := t.TempDir()
	link := filepath.Join(t.TempDir(), "tmp-link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	wantReal, err := filepath.EvalSymlinks(real)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ tmpdir, want string }{
		{"", "/tmp"},
		{link, wantReal},
		{link + "/", wantReal},
		{"/nonexistent-tvix-tmp/", "/nonexistent-tvix-tmp"},
	} {
		t.Setenv("TMPDIR", c.tmpdir)
		if got := nixTempRoot(); got != c.want {
			t.Errorf("TMPDIR=%q: %q, want %q", c.tmpdir, got, c.want)
		}
	}
}
