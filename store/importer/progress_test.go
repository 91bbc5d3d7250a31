package importer

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/tvix-go/tvix/castore/blobstore"
	"github.com/tvix-go/tvix/castore/dirstore"
	"github.com/tvix-go/tvix/castore/fstree"
	"github.com/tvix-go/tvix/store/pathinfo"
)

// TestProgressCountsTheImport: Store.Progress sees every file and byte of
// an import, which is what the command's progress bar shows.
func TestProgressCountsTheImport(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a"), make([]byte, 3000), 0o644)
	os.WriteFile(filepath.Join(dir, "b"), []byte("hello"), 0o644)
	p := &fstree.Progress{}
	s := Store{Blobs: blobstore.NewMemory(), Dirs: dirstore.NewMemory(), PathInfo: pathinfo.NewMemory(), Progress: p}
	if _, _, err := s.AddRecursive(context.Background(), dir, "src"); err != nil {
		t.Fatal(err)
	}
	if p.Files.Load() != 2 || p.Bytes.Load() != 3005 {
		t.Fatalf("progress: %d files, %d bytes; want 2, 3005", p.Files.Load(), p.Bytes.Load())
	}
}
