package blobstore

import (
	"context"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// CheckIndex notices, without reading contents, a truncated pack (index
// entries past its end) and a missing one; a sound store has no problems.
func TestCheckIndex(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := mustPack(t, dir)
	var blobs [][]byte
	for i := range 2 {
		b := make([]byte, 3<<20)
		rand.New(rand.NewSource(int64(i))).Read(b)
		blobs = append(blobs, b)
		putBlob(t, s, b)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if problems, err := s.CheckIndex(ctx); err != nil || len(problems) != 0 {
		t.Fatalf("sound store: %v, %v", problems, err)
	}
	s.Close()
	packs, _ := filepath.Glob(filepath.Join(dir, "packs", "*.pack"))
	if len(packs) < 2 {
		t.Fatalf("want a pack per large blob, have %v", packs)
	}
	fi, _ := os.Stat(packs[0])
	if err := os.Truncate(packs[0], fi.Size()/2); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(packs[1]); err != nil {
		t.Fatal(err)
	}
	s = mustPack(t, dir)
	defer s.Close()
	problems, err := s.CheckIndex(ctx)
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(problems, "\n")
	if len(problems) != 2 || !strings.Contains(all, packs[0]+" is truncated") || !strings.Contains(all, packs[1]+" is missing") {
		t.Fatalf("problems after truncating one pack and removing another:\n%s", all)
	}
}
