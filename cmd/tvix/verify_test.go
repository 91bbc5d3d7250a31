package main

import (
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `tvix store verify`, without --check-contents, notices a truncated pack
// and a missing one, ends with a summary line, and exits non-zero.
func TestStoreVerifyNoticesPackDamage(t *testing.T) {
	data := t.TempDir()
	env := []string{"XDG_DATA_HOME=" + data}
	for i := range 2 {
		f := filepath.Join(t.TempDir(), "big")
		b := make([]byte, 3<<20)
		rand.New(rand.NewSource(int64(i))).Read(b)
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, stderr, err := run(t, env, "store", "import", f); err != nil {
			t.Fatalf("import: %v %s", err, stderr)
		}
	}
	out, stderr, err := run(t, env, "store", "verify")
	if err != nil || !strings.Contains(out, "checked 2 paths, 2 blobs, 6291456 bytes: 0 problems") {
		t.Fatalf("verify of a sound store: %v, stdout %q, stderr %q", err, out, stderr)
	}
	packs, _ := filepath.Glob(filepath.Join(data, "tvix", "packs", "packs", "*.pack"))
	if len(packs) != 2 {
		t.Fatalf("want a pack per imported file, have %v", packs)
	}
	if err := os.Truncate(packs[0], 1000); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(packs[1]); err != nil {
		t.Fatal(err)
	}
	out, stderr, err = run(t, env, "store", "verify")
	if err == nil {
		t.Fatalf("verify passed a store with a truncated and a missing pack: %s", out)
	}
	if !strings.Contains(stderr, packs[0]+" is truncated") || !strings.Contains(stderr, packs[1]+" is missing") || !strings.Contains(out, ": 2 problems") {
		t.Fatalf("verify after pack damage: stdout %q, stderr %q", out, stderr)
	}
}
