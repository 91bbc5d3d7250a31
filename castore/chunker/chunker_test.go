package chunker

import (
	"bytes"
	"math/rand"
	"testing"
)

func split(c *Chunker, data []byte) [][]byte {
	var out [][]byte
	for len(data) > 0 {
		n := c.Cut(data)
		out = append(out, data[:n])
		data = data[n:]
	}
	return out
}

func TestBoundsAndReassembly(t *testing.T) {
	c := MustNew(Params{Min: 1 << 10, Avg: 4 << 10, Max: 16 << 10})
	data := make([]byte, 1<<20)
	rand.New(rand.NewSource(1)).Read(data)
	chunks := split(c, data)
	if !bytes.Equal(bytes.Join(chunks, nil), data) {
		t.Fatal("chunks do not reassemble to the input")
	}
	for i, ch := range chunks[:len(chunks)-1] {
		if len(ch) < 1<<10 || len(ch) > 16<<10 {
			t.Fatalf("chunk %d has size %d outside [1 KiB, 16 KiB]", i, len(ch))
		}
	}
	avg := len(data) / len(chunks)
	if avg < 2<<10 || avg > 8<<10 {
		t.Errorf("average chunk size %d, want near 4 KiB", avg)
	}
}

// An insertion near the start must leave most later chunks unchanged:
// that is the point of content-defined chunking.
func TestInsertionKeepsLaterChunks(t *testing.T) {
	c := MustNew(Params{Min: 1 << 10, Avg: 4 << 10, Max: 16 << 10})
	data := make([]byte, 1<<20)
	rand.New(rand.NewSource(2)).Read(data)
	edited := append(append(append([]byte{}, data[:5000]...), []byte("inserted bytes")...), data[5000:]...)
	old := map[string]bool{}
	for _, ch := range split(c, data) {
		old[string(ch)] = true
	}
	shared, total := 0, 0
	for _, ch := range split(c, edited) {
		total++
		if old[string(ch)] {
			shared++
		}
	}
	if shared < total-3 {
		t.Fatalf("only %d of %d chunks survived a 14-byte insertion", shared, total)
	}
}

func TestNewRejectsBadParams(t *testing.T) {
	for _, p := range []Params{{0, 1, 2}, {100, 100, 200}, {100, 300, 200}} {
		if _, err := New(p); err == nil {
			t.Errorf("New(%+v) accepted", p)
		}
	}
}

func BenchmarkCut(b *testing.B) {
	c := MustNew(Default)
	data := make([]byte, 64<<20)
	rand.New(rand.NewSource(3)).Read(data)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		split(c, data)
	}
}
