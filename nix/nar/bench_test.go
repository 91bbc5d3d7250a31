package nar

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Store paths are computed by hashing NARs, many of them small: the NAR of
// a source file used as a string while evaluating, say.
func BenchmarkHashSmallFile(b *testing.B) {
	contents := []byte("hello\n")
	b.ReportAllocs()
	for b.Loop() {
		h := sha256.New()
		w := NewWriter(h)
		if err := w.File(false, uint64(len(contents)), bytes.NewReader(contents)); err != nil {
			b.Fatal(err)
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		h.Sum(nil)
	}
}

// A source tree hashed from disk: file contents are read in large pieces.
func BenchmarkHashTree(b *testing.B) {
	dir := b.TempDir()
	for i := range 100 {
		size := 2 << 10
		if i%10 == 0 {
			size = 200 << 10
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d", i)), bytes.Repeat([]byte{byte(i)}, size), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		h := sha256.New()
		if err := DumpPath(h, dir); err != nil {
			b.Fatal(err)
		}
		h.Sum(nil)
	}
}
