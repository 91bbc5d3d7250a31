package blobstore

import (
	"context"
	"errors"
	"io"
	"math/rand"
	"os"
	"strings"
	"testing"

	"github.com/tvix-go/tvix/castore"
)

// flipByte changes one byte of chunk d where the backend keeps it, and
// returns the file it changed.
func flipByte(t *testing.T, s *Store, d castore.Digest, at int64) string {
	t.Helper()
	var f *os.File
	var off int64
	switch b := s.b.(type) {
	case *packBackend:
		loc, ok, err := b.lookupChunk(d)
		if err != nil || !ok {
			t.Fatalf("chunk %s not in the pack index: %v", d, err)
		}
		if f, err = os.OpenFile(b.packPath(loc.pack), os.O_RDWR, 0); err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		off = loc.off
	case *memBackend:
		e, ok := b.lookup(d)
		if !ok {
			t.Fatalf("chunk %s not in memory", d)
		}
		f, off = e.file.f, e.off
	case *fileBackend:
		var err error
		if f, err = os.OpenFile(b.path("chunks", d), os.O_RDWR, 0); err != nil {
			t.Fatal(err)
		}
		defer f.Close()
	default:
		t.Fatalf("unknown backend %T", s.b)
	}
	one := make([]byte, 1)
	if _, err := f.ReadAt(one, off+at); err != nil {
		t.Fatal(err)
	}
	one[0] ^= 0x20
	if _, err := f.WriteAt(one, off+at); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

func putBlob(t *testing.T, s *Store, data []byte) castore.Digest {
	t.Helper()
	w, err := s.Put(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	d, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// localBackends are the backends whose bytes lie in local files, where a
// test can flip one (flipByte).
var localBackends = []struct {
	name string
	open func(t *testing.T) *Store
}{
	{"pack", func(t *testing.T) *Store { return mustPack(t, t.TempDir()) }},
	{"memory", func(t *testing.T) *Store { return NewMemory() }},
	{"objectstore", func(t *testing.T) *Store {
		s, err := NewFile(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}},
}

// A flipped byte in a stored chunk makes reads of that chunk fail with
// ErrCorrupt naming the chunk and its file, in every backend; other
// chunks of the blob stay readable; no file range or backing file of the
// corrupt bytes is handed out.
func TestVerifiedReads(t *testing.T) {
	ctx := context.Background()
	for _, tc := range localBackends {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.open(t)
			defer s.Close()
			big := make([]byte, 6<<20)
			rand.New(rand.NewSource(1)).Read(big)
			small := []byte(strings.Repeat("small blob ", 1000))
			bd, sd := putBlob(t, s, big), putBlob(t, s, small)
			chunks, err := s.Chunks(ctx, bd)
			if err != nil || len(chunks) < 3 {
				t.Fatalf("big blob has %d chunks (%v), want several", len(chunks), err)
			}
			_, local := s.b.(locator)
			_, backs := s.b.(backingFiler)

			// Corrupt the second chunk of the big blob, and the small one.
			bad := chunks[1].Digest
			file := flipByte(t, s, bad, 100)
			smallFile := flipByte(t, s, sd, 5)

			check := func(what string, err error, chunk castore.Digest, file string) {
				t.Helper()
				if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), chunk.String()) || !strings.Contains(err.Error(), file) {
					t.Fatalf("%s: %v, want ErrCorrupt naming chunk %s and %s", what, err, chunk, file)
				}
			}
			r, err := s.Open(ctx, bd)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			check("reading the big blob", err, bad, file)
			if int64(len(got)) > int64(chunks[0].Size) {
				t.Fatalf("read %d bytes, past the end of the last good chunk (%d)", len(got), chunks[0].Size)
			}
			// The chunks around it are fine.
			buf := make([]byte, 1000)
			off := int64(chunks[0].Size + chunks[1].Size)
			if _, err := r.ReadAt(buf, off); err != nil || string(buf) != string(big[off:off+1000]) {
				t.Fatalf("reading a good chunk after a bad one: %v", err)
			}
			if fr, ok := r.(castore.FileRanger); ok && local {
				if f, _, _ := fr.FileRange(int64(chunks[0].Size)+10, 100); f != nil {
					t.Fatal("FileRange handed out a corrupt chunk's range")
				}
				if f, _, _ := fr.FileRange(off, 100); f == nil {
					t.Fatal("FileRange refused a good chunk's range")
				}
			}
			r.Close()

			_, err = s.Open(ctx, sd)
			if err == nil {
				r, _ := s.Open(ctx, sd)
				_, err = io.ReadAll(r)
			}
			check("reading the small blob", err, sd, smallFile)

			if backs {
				if _, _, ok := s.BackingFile(ctx, bd); ok {
					t.Fatal("BackingFile handed out a corrupt blob's file")
				}
			}
		})
	}
}

// A backing file is verified when first handed out, not on every call
// (the kernel reads it, not us).
func TestBackingFileVerifiedOnce(t *testing.T) {
	ctx := context.Background()
	s := mustPack(t, t.TempDir())
	defer s.Close()
	big := make([]byte, 6<<20)
	rand.New(rand.NewSource(2)).Read(big)
	d := putBlob(t, s, big)
	if _, _, ok := s.BackingFile(ctx, d); !ok {
		t.Fatal("a large blob written in one piece has no backing file")
	}
	s.backing.mu.Lock()
	_, seen := s.backing.seen[d]
	s.backing.mu.Unlock()
	if !seen {
		t.Fatal("a verified backing file was not remembered")
	}
}
