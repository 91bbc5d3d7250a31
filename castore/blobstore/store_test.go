package blobstore

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castoretest"
)

func TestMemory(t *testing.T) {
	castoretest.RunBlobService(t, func(*testing.T) castore.BlobService { return NewMemory() })
}

func TestFile(t *testing.T) {
	castoretest.RunBlobService(t, func(t *testing.T) castore.BlobService {
		s, err := NewFile(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestFileLeavesNoTempFiles(t *testing.T) {
	dir := t.TempDir()
	s, err := NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := s.Put(context.Background(), castore.WithExpectedDigest(castore.Digest{1}))
	w.Write(make([]byte, 3<<20))
	if _, err := w.Close(); err == nil {
		t.Fatal("mismatch accepted")
	}
	left, _ := os.ReadDir(filepath.Join(dir, "tmp"))
	if len(left) != 0 {
		t.Fatalf("%d temp files left after a refused put", len(left))
	}
	if _, err := os.Stat(filepath.Join(dir, "chunks")); err == nil {
		entries, _ := filepath.Glob(filepath.Join(dir, "chunks", "b3", "*", "*"))
		if len(entries) != 0 {
			t.Fatalf("refused put left chunks: %v", entries)
		}
	}
}

func TestFileRefusesUnknownFormat(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, formatFile), []byte("tvix-go objectstore v99\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := NewFile(dir); err == nil || !strings.Contains(err.Error(), "unknown format") {
		t.Fatalf("NewFile on a v99 store = %v, want unknown format error", err)
	}
}

// A put interrupted by a crash leaves only a temp file, which is invisible
// and swept on a later open.
func TestFileInterruptedPutInvisibleAndSwept(t *testing.T) {
	dir := t.TempDir()
	s, err := NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 3<<20)
	data[0] = 1
	w, _ := s.Put(context.Background())
	w.Write(data) // staged chunks written to tmp/, never committed
	if ok, _ := s.Has(context.Background(), castore.HashBlob(data)); ok {
		t.Fatal("uncommitted blob visible")
	}
	left, _ := os.ReadDir(filepath.Join(dir, "tmp"))
	if len(left) == 0 {
		t.Fatal("expected staged temp files")
	}
	old := time.Now().Add(-2 * time.Hour)
	for _, e := range left {
		os.Chtimes(filepath.Join(dir, "tmp", e.Name()), old, old)
	}
	if _, err := NewFile(dir); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(left) != 0 {
		t.Fatalf("%d stale temp files not swept", len(left))
	}
}
