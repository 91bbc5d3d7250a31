package blobstore

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
