package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tvix-go/tvix/internal/nixtest"
)

// TestStoreImportMatchesNix compares store paths and NAR bytes with C++ Nix.
func TestStoreImportMatchesNix(t *testing.T) {
	nixtest.Require(t)
	env := []string{"XDG_DATA_HOME=" + t.TempDir()}
	src := filepath.Join(t.TempDir(), "tree")
	writeTree(t, src, 3<<20)
	file := filepath.Join(t.TempDir(), "file.txt")
	os.WriteFile(file, []byte("flat contents\n"), 0o644)

	cases := []struct {
		tvix, nix []string
	}{
		{[]string{"store", "import", src}, []string{"nix-store", "--add", src}},
		{[]string{"store", "import", file}, []string{"nix-store", "--add", file}},
		{[]string{"store", "import", "--flat", file}, []string{"nix-store", "--add-fixed", "sha256", file}},
		{[]string{"store", "import", "--fixed", "sha1", src}, []string{"nix-store", "--add-fixed", "--recursive", "sha1", src}},
		{[]string{"store", "import", "--fixed", "sha512", "--flat", file}, []string{"nix-store", "--add-fixed", "sha512", file}},
	}
	for _, tc := range cases {
		out, stderr, err := run(t, env, tc.tvix...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", tc.tvix, err, stderr)
		}
		want := nixtest.Text(t, tc.nix[0], tc.nix[1:]...)
		if strings.TrimSpace(out) != want {
			t.Errorf("%v = %q, nix-store says %q", tc.tvix, out, want)
			continue
		}
		nar, stderr, err := run(t, env, "store", "dump", want)
		if err != nil {
			t.Fatalf("dump %s: %v %s", want, err, stderr)
		}
		wantNAR := string(nixtest.Run(t, "nix-store", "--dump", want))
		if !bytes.Equal([]byte(nar), []byte(wantNAR)) {
			t.Errorf("NAR of %s differs from nix-store --dump (%d vs %d bytes)", want, len(nar), len(wantNAR))
		}
		q, _, err := run(t, env, "store", "query", "--hash", want)
		if err != nil || strings.TrimSpace(q) != nixtest.Text(t, "nix-store", "-q", "--hash", want) {
			t.Errorf("NAR hash of %s: %q vs nix %q (%v)", want, q, nixtest.Text(t, "nix-store", "-q", "--hash", want), err)
		}
	}
	if out, stderr, err := run(t, env, "store", "verify", "--check-contents"); err != nil {
		t.Fatalf("verify: %v %s %s", err, out, stderr)
	}
}

func TestStoreImportReferencesFrom(t *testing.T) {
	env := []string{"XDG_DATA_HOME=" + t.TempDir()}
	dep := filepath.Join(t.TempDir(), "dep")
	os.WriteFile(dep, []byte("dependency"), 0o644)
	out, stderr, err := run(t, env, "store", "import", dep)
	if err != nil {
		t.Fatalf("%v %s", err, stderr)
	}
	depPath := strings.TrimSpace(out)
	user := filepath.Join(t.TempDir(), "user")
	os.WriteFile(user, []byte("#!/bin/sh\nexec "+depPath+"/bin/x\n"), 0o644)
	out, stderr, err = run(t, env, "store", "import", "--references-from", depPath, user)
	if err != nil {
		t.Fatalf("%v %s", err, stderr)
	}
	userPath := strings.TrimSpace(out)
	refs, _, err := run(t, env, "store", "query", "--references", userPath)
	if err != nil || strings.TrimSpace(refs) != depPath {
		t.Fatalf("references of %s = %q (%v), want %s", userPath, refs, err, depPath)
	}
	plain, _, _ := run(t, env, "store", "import", user)
	if strings.TrimSpace(plain) == userPath {
		t.Fatal("a path with references must differ from the same contents without")
	}
	referrers, _, _ := run(t, env, "store", "query", "--referrers", depPath)
	if strings.TrimSpace(referrers) != userPath {
		t.Fatalf("referrers of %s = %q", depPath, referrers)
	}
}

func TestStoreVerifyReportsDamage(t *testing.T) {
	data := t.TempDir()
	// The object-store layout makes losing one chunk a file removal.
	env := []string{"XDG_DATA_HOME=" + data, "BLOB_SERVICE_ADDR=objectstore+file://" + filepath.Join(data, "tvix", "blobs")}
	f := filepath.Join(t.TempDir(), "victim")
	os.WriteFile(f, []byte("contents that will go missing"), 0o644)
	out, stderr, err := run(t, env, "store", "import", f)
	if err != nil {
		t.Fatalf("%v %s", err, stderr)
	}
	sp := strings.TrimSpace(out)
	chunks, _ := filepath.Glob(filepath.Join(data, "tvix", "blobs", "chunks", "b3", "*", "*"))
	if len(chunks) != 1 {
		t.Fatalf("expected one stored chunk, found %v", chunks)
	}
	os.Remove(chunks[0])
	for _, args := range [][]string{{"store", "verify"}, {"store", "verify", "--check-contents"}} {
		_, stderr, err := run(t, env, args...)
		if err == nil || !strings.Contains(stderr, "path '"+sp+"' is damaged") {
			t.Fatalf("%v after losing a blob: err %v, stderr %q", args, err, stderr)
		}
	}
}
