package eval

import (
	"slices"
	"testing"
)

func TestAppendItemsAcrossChunks(t *testing.T) {
	for _, n := range []int{0, 1, itemChunk - 1, itemChunk, itemChunk + 1, 3*itemChunk + 7} {
		items := make([]Value, n)
		for i := range items {
			items[i] = Int(i)
		}
		head := []Value{Str("head")}
		got := appendItems(slices.Clip(head), items)
		want := append(slices.Clip(head), items...)
		if !slices.Equal(got, want) {
			t.Errorf("appendItems of %d items: %d items, differs from append", n, len(got))
		}
	}
}

func TestInChunksCoversEachIndexOnce(t *testing.T) {
	for _, n := range []int{0, 1, itemChunk, itemChunk + 1, 5*itemChunk - 3} {
		seen := make([]int, n)
		inChunks(n, func(lo, hi int) {
			if hi-lo > itemChunk || lo >= hi {
				t.Errorf("n=%d: chunk [%d, %d)", n, lo, hi)
			}
			for i := lo; i < hi; i++ {
				seen[i]++
			}
		})
		for i, c := range seen {
			if c != 1 {
				t.Fatalf("n=%d: index %d filled %d times", n, i, c)
			}
		}
	}
}

// prefault must leave a fresh slice as it was (all zero), the parts
// past its length included, for element sizes that pages split.
func TestPrefaultKeepsFreshSliceZero(t *testing.T) {
	vs := make([]Value, 10, prefaultMin) // 16 × 64K bytes: prefaulted
	prefault(vs)
	for i, v := range vs[:cap(vs)] {
		if v != nil {
			t.Fatalf("Value %d = %v after prefault", i, v)
		}
	}
	as := make([]Attr, prefaultMin/8) // 40-byte elements: pages start mid-attribute
	prefault(as)
	for i, a := range as {
		if a != (Attr{}) {
			t.Fatalf("Attr %d = %+v after prefault", i, a)
		}
	}
	// and the slices still take pointers (no word was left non-zero)
	vs[len(vs)-1] = Str("x")
	as[len(as)-1] = MkAttr("x", Int(1))
	if vs[len(vs)-1].(*String).S != "x" || as[len(as)-1].Name() != "x" {
		t.Fatal("stores after prefault lost")
	}
}

// genericClosure moves its queue to the front of the same slice.
func TestCopyItemsOverlappingToFront(t *testing.T) {
	for _, head := range []int{1, 256, itemChunk + 3} {
		n := 2*itemChunk + 5
		work := make([]Value, head+n)
		for i := range work {
			work[i] = Int(i)
		}
		if got := copyItems(work, work[head:]); got != n {
			t.Fatalf("head %d: copied %d, want %d", head, got, n)
		}
		for i := range n {
			if work[i] != Int(head+i) {
				t.Fatalf("head %d: work[%d] = %v, want %d", head, i, work[i], head+i)
			}
		}
	}
}

// pageSpan is the whole pages inside a range, none when it is within
// one page or straddles only two partly.
func TestPageSpan(t *testing.T) {
	for _, c := range []struct{ p, n, start, end uintptr }{
		{0x10000, 0x3000, 0x10000, 0x13000},  // aligned both ends
		{0x10008, 0x3000, 0x11000, 0x13000},  // head partial
		{0x10000, 0x2ff8, 0x10000, 0x12000},  // tail partial
		{0x10ff8, 0x10, 0x11000, 0x11000},    // across one boundary: no whole page
		{0x10010, 0x100, 0x11000, 0x10000},   // inside one page: empty
		{0x10008, 0x10ff8, 0x11000, 0x21000}, // head partial, end aligned
	} {
		start, end := pageSpan(c.p, c.n)
		if start != c.start || end != c.end {
			t.Errorf("pageSpan(%#x, %#x) = %#x, %#x; want %#x, %#x", c.p, c.n, start, end, c.start, c.end)
		}
	}
}
