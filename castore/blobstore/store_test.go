package blobstore

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
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

// The memory store gives an aborted put's memory back, hands readers file
// ranges (so a mount can splice), and refuses use after Close by name.
func TestMemoryFilesReleaseAndRanges(t *testing.T) {
	ctx := context.Background()
	s := NewMemory()
	m := s.b.(*memBackend)
	allocated := func() int64 {
		var n int64
		for _, f := range m.files {
			fi, err := f.f.Stat()
			if err != nil {
				t.Fatal(err)
			}
			n += fi.Sys().(*syscall.Stat_t).Blocks * 512
		}
		return n
	}

	data := bytes.Repeat([]byte("0123456789abcdef"), 3<<20/16)
	for i := range data {
		data[i] ^= byte(i * 7 / 3)
	}
	w, _ := s.Put(ctx, castore.WithExpectedDigest(castore.Digest{1}))
	w.Write(data)
	if _, err := w.Close(); err == nil {
		t.Fatal("mismatch accepted")
	}
	if got := allocated(); got > 64<<10 {
		t.Fatalf("refused put of %d bytes left %d bytes allocated", len(data), got)
	}

	w, _ = s.Put(ctx)
	w.Write(data)
	d, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Open(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	fr, ok := r.(castore.FileRanger)
	if !ok {
		t.Fatalf("memory reader %T offers no file ranges", r)
	}
	f, off, n := fr.FileRange(100, 4096)
	if f == nil || n <= 0 {
		t.Fatal("no file range for a stored blob")
	}
	got := make([]byte, n)
	if _, err := f.ReadAt(got, off); err != nil || !bytes.Equal(got, data[100:100+n]) {
		t.Fatalf("file range holds other bytes (err %v)", err)
	}
	r.Close()

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	w, _ = s.Put(ctx)
	w.Write([]byte("after close"))
	if _, err := w.Close(); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("put after close: %v, want an error saying the store is closed", err)
	}
}
