package fstree

import (
	"context"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/blobstore"
	"github.com/tvix-go/tvix/castore/dirstore"
)

// makeTree builds a tree with the shapes a store path can have.
func makeTree(t *testing.T, root string, bigSize int) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewSource(1))
	data := func(n int) []byte { b := make([]byte, n); rng.Read(b); return b }
	must(os.MkdirAll(filepath.Join(root, "a/b/c/d/e"), 0o755))
	must(os.MkdirAll(filepath.Join(root, "empty-dir"), 0o755))
	must(os.WriteFile(filepath.Join(root, "empty-file"), nil, 0o644))
	must(os.WriteFile(filepath.Join(root, "one-byte"), []byte{'x'}, 0o644))
	must(os.WriteFile(filepath.Join(root, "a/b/exe"), data(4097), 0o755))
	must(os.WriteFile(filepath.Join(root, "a/b/c/d/e/deep"), data(4095), 0o644))
	must(os.WriteFile(filepath.Join(root, "name with spaces = ünïcode"), data(100), 0o644))
	must(os.WriteFile(filepath.Join(root, "latin1-\xe9"), data(10), 0o644))
	must(os.WriteFile(filepath.Join(root, "big"), data(bigSize), 0o644))
	must(os.Symlink("a/b/exe", filepath.Join(root, "rel-link")))
	must(os.Symlink("/nix/store/nowhere", filepath.Join(root, "abs-dangling")))
	must(os.Symlink("../..", filepath.Join(root, "a/b/up")))
}

func countFiles(t *testing.T, dir string) int {
	n := 0
	filepath.Walk(dir, func(_ string, fi os.FileInfo, _ error) error {
		if fi != nil && fi.Mode().IsRegular() {
			n++
		}
		return nil
	})
	return n
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "src")
	// 200 MB is exercised by the CLI test with an uninstrumented binary.
	makeTree(t, src, 20<<20)
	storeDir := t.TempDir()
	blobs, err := blobstore.NewFile(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	dirs := dirstore.NewMemory()
	node, err := Import(ctx, src, blobs, dirs, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(node.GetDirectory().GetName()) != "src" {
		t.Fatalf("root node name %q, want src", node.GetDirectory().GetName())
	}
	before := countFiles(t, filepath.Join(storeDir, "chunks")) + countFiles(t, filepath.Join(storeDir, "blobs"))

	dst := filepath.Join(t.TempDir(), "dst")
	if err := Export(ctx, node, dst, blobs, dirs); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("diff", "-r", "--no-dereference", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("diff -r: %v\n%s", err, out)
	}
	for _, p := range []string{"a/b/exe", "one-byte"} {
		a, _ := os.Stat(filepath.Join(src, p))
		b, _ := os.Stat(filepath.Join(dst, p))
		if a.Mode()&0o111 != b.Mode()&0o111 {
			t.Errorf("%s: exec bits %v vs %v", p, a.Mode(), b.Mode())
		}
	}

	// A second copy elsewhere stores nothing new.
	copy2 := filepath.Join(t.TempDir(), "src")
	if out, err := exec.Command("cp", "-a", src, copy2).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	node2, err := Import(ctx, copy2, blobs, dirs, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if castore.NodeName(node2) == nil || string(node2.GetDirectory().GetDigest()) != string(node.GetDirectory().GetDigest()) {
		t.Fatal("second copy has another root digest")
	}
	after := countFiles(t, filepath.Join(storeDir, "chunks")) + countFiles(t, filepath.Join(storeDir, "blobs"))
	if after != before {
		t.Fatalf("second import stored %d new files", after-before)
	}
}

func TestImportRefusesSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	if err := exec.Command("mkfifo", filepath.Join(dir, "fifo")).Run(); err != nil {
		t.Fatal(err)
	}
	_, err := Import(context.Background(), dir, blobstore.NewMemory(), dirstore.NewMemory(), ImportOptions{})
	if err == nil {
		t.Fatal("fifo imported")
	}
}

func TestExportRefusesExistingDest(t *testing.T) {
	ctx := context.Background()
	blobs, dirs := blobstore.NewMemory(), dirstore.NewMemory()
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644)
	node, err := Import(ctx, src, blobs, dirs, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := Export(ctx, node, src, blobs, dirs); err == nil {
		t.Fatal("export over an existing path succeeded")
	}
}
