package blobstore

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
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

// ReadFrom (used by io.Copy) cuts the same chunks and digest as Write,
// whatever sizes the source reads in.
func TestWriterReadFromMatchesWrite(t *testing.T) {
	ctx := context.Background()
	data := randomBytes(9, 5<<20+17)
	want, err := castoretest.PutBlob(t, NewMemory(), data, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []io.Reader{
		bytes.NewReader(data),
		iotest.OneByteReader(bytes.NewReader(data[:300000])),
		iotest.HalfReader(bytes.NewReader(data)),
	} {
		s := NewMemory()
		w, err := s.Put(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(w, r)
		if err != nil {
			t.Fatal(err)
		}
		d, err := w.Close()
		if err != nil {
			t.Fatal(err)
		}
		if n == int64(len(data)) && d != want {
			t.Fatalf("ReadFrom digest %s, Write digest %s", d, want)
		}
		if n != int64(len(data)) && d != castore.HashBlob(data[:n]) {
			t.Fatalf("ReadFrom of %d bytes: digest %s", n, d)
		}
		got := readAll(t, s, d)
		if !bytes.Equal(got, data[:n]) {
			t.Fatal("ReadFrom stored different bytes")
		}
	}
}

// An aborted put's chunks go back to the slab when nothing was allocated
// after them, and stored chunks never share bytes with later ones.
func TestSlabGiveBack(t *testing.T) {
	var s slabs
	a := s.copy([]byte("first"))
	b := s.copy([]byte("second"))
	s.giveBack(a) // not the latest: stays
	s.giveBack(b)
	c := s.copy([]byte("third!"))
	if &c[0] != &b[0] {
		t.Fatal("the latest chunk's space was not reused after giveBack")
	}
	c = append(c, 'x') // capacity is exact: appending must not write into the slab
	if string(a) != "first" || cap(a) != len(a) {
		t.Fatalf("slab chunk changed or has spare capacity: %q cap %d", a, cap(a))
	}
	big := s.copy(make([]byte, slabMaxChunk+1))
	if len(big) != slabMaxChunk+1 {
		t.Fatal("large chunk copied wrong")
	}
}
