package blobstore

import (
	"context"
	"io"
	"math/rand"
	"testing"
)

// BenchmarkPackRead reads a 64 MiB blob from the pack store sequentially,
// as a NAR render or a FUSE reader without splice does.
func BenchmarkPackRead(b *testing.B) {
	ctx := context.Background()
	s, err := NewPack(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	data := make([]byte, 64<<20)
	rand.New(rand.NewSource(1)).Read(data)
	w, err := s.Put(ctx)
	if err != nil {
		b.Fatal(err)
	}
	w.Write(data)
	d, err := w.Close()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		r, err := s.Open(ctx, d)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			b.Fatal(err)
		}
		r.Close()
	}
}
