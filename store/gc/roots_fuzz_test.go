package gc

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzReadRoots: a roots file either reads as store paths or fails
// naming the line; never a panic, never a path that is not one.
func FuzzReadRoots(f *testing.F) {
	for _, s := range []string{
		"/nix/store/00000000000000000000000000000000-a\n",
		"# c\n\n/nix/store/00000000000000000000000000000000-a/bin/x\n",
		"/tmp/x\n", "/nix/store/short-a\n", "\x00\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p := filepath.Join(t.TempDir(), "roots")
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		roots, err := ReadRoots(context.Background(), p)
		if err != nil {
			if !strings.Contains(err.Error(), "line ") && !strings.Contains(err.Error(), p) {
				t.Fatalf("error does not say where: %v", err)
			}
			return
		}
		for _, r := range roots {
			if !strings.Contains(s, r.HashPart()) {
				t.Fatalf("root %s not in the file", r)
			}
		}
	})
}
