package blobstore

import (
	"fmt"
	"math/rand"
	"testing"

	"lukechampine.com/blake3"
)

// TestBlake3SerialIsBlake3: every length up to 70 KiB (all tree shapes
// of up to 70 chunks, partial last chunks, exact multiples) and larger
// ones up to two maximum chunks hash as the library's Hasher does.
func TestBlake3SerialIsBlake3(t *testing.T) {
	data := make([]byte, 2<<20+3)
	rand.New(rand.NewSource(3)).Read(data)
	lengths := []int{}
	for n := 0; n <= 70<<10; n += 1 + n/97 {
		lengths = append(lengths, n)
	}
	for _, n := range []int{1023, 1024, 1025, 16 << 10, 16<<10 + 1, 32 << 10, 64<<10 - 1, 256 << 10, 1 << 20, 1<<20 + 1024, 2 << 20, 2<<20 + 3} {
		lengths = append(lengths, n)
	}
	for _, n := range lengths {
		var want [32]byte
		h := blake3.New(32, nil)
		h.Write(data[:n])
		h.Sum(want[:0])
		if got := blake3Serial(data[:n]); got != want {
			t.Fatalf("length %d: %x, want %x", n, got, want)
		}
	}
}

// TestSerialHasherIsBlake3: the streaming hasher agrees with the library
// however the input is split into writes (chunk-aligned or not, groups of
// sixteen chunks or not, bytes one at a time).
func TestSerialHasherIsBlake3(t *testing.T) {
	data := make([]byte, 3<<20+77)
	rng := rand.New(rand.NewSource(4))
	rng.Read(data)
	for _, n := range []int{0, 1, 1024, 1025, 16 << 10, 17<<10 + 5, 1 << 20, 3<<20 + 77} {
		want := blake3.Sum256(data[:n])
		for _, split := range []int{1, 1000, 1024, 4096, 16 << 10, 16<<10 + 1, 64 << 10, 1 << 20, -1} {
			if split == 1 && n > 64<<10 {
				continue
			}
			var h serialHasher
			for p := data[:n]; len(p) > 0; {
				k := split
				if split < 0 {
					k = 1 + rng.Intn(300<<10) // random pieces
				}
				k = min(k, len(p))
				h.Write(p[:k])
				p = p[k:]
			}
			if got := h.Sum(); got != want {
				t.Fatalf("%d bytes in writes of %d: %x, want %x", n, split, got, want)
			}
		}
	}
}

// BenchmarkBlake3 at chunk sizes: the default chunker's average, a
// chunk ending mid-group and mid-chunk, and a small file's single chunk.
func BenchmarkBlake3(b *testing.B) {
	for _, size := range []int{256 << 10, 100<<10 + 37, 20<<10 + 5} {
		buf := make([]byte, size)
		b.Run(fmt.Sprintf("serial/%d", size), func(b *testing.B) {
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				blake3Serial(buf)
			}
		})
		b.Run(fmt.Sprintf("library/%d", size), func(b *testing.B) {
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				h := blake3.New(32, nil)
				h.Write(buf)
				h.Sum(nil)
			}
		})
	}
}
