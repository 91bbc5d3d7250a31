package eval

import (
	"runtime"
	"unsafe"
)

// itemChunk is how many list items are copied or filled between two
// points where the collector can stop the evaluating goroutine: 4,096
// items (64 KB) take microseconds, the call per chunk is noise.
const itemChunk = 4096

// A collector cycle has to stop the evaluating goroutine to scan its
// stack, and it can only do so at a safe point. Copying a slice of
// pointers is one runtime call that cannot be preempted (typedslicecopy,
// with its bulk write barrier while a cycle marks), and a loop storing
// pointers is mostly write-barrier sequences, which are not safe points
// either. For as long as such a copy or loop over millions of items
// ran, the mark worker on the other core spun in suspendG sending one
// preemption signal after another (concatLists of 800,000: 15,000 tgkill
// and 28,000 sched_yield, 0.9 s of system time in a run of 1.3 s; foldl'
// over genList of 2,000,000: 24,000 tgkill), and the signals slowed the
// loop down further. Large copies and fills are therefore done in chunks
// with a real preemption point between them.

// appendItems is append(out, items...) in chunks. Each chunk is copied
// by a call that is not inlined: its prologue is where a requested
// preemption is taken (a loop of inlined copies has none).
func appendItems(out, items []Value) []Value {
	for len(items) > itemChunk {
		out = appendChunk(out, items[:itemChunk])
		items = items[itemChunk:]
	}
	return appendChunk(out, items)
}

//go:noinline
func appendChunk(out, items []Value) []Value { return append(out, items...) }

// copyItems is copy(dst, src) in chunks, as appendItems.
func copyItems(dst, src []Value) int {
	n := min(len(dst), len(src))
	appendItems(dst[:0], src[:n])
	return n
}

// inChunks calls fill over [0, n) in chunks, yielding between them (a
// fill of pointers alone compiles to a leaf without a preemption check in
// its prologue, so the yield is explicit).
func inChunks(n int, fill func(lo, hi int)) {
	for lo := 0; lo < n; lo += itemChunk {
		if lo > 0 {
			runtime.Gosched()
		}
		fill(lo, min(lo+itemChunk, n))
	}
}

// prefaultMin is the size from which a fresh slice is prefaulted: a
// large allocation gets pages the process has not touched yet, a small
// one mostly comes from pages in use already.
const prefaultMin = 64 << 10

// pageSpan is the whole pages within the n bytes at p: [start, end),
// empty (end <= start) when there are none.
func pageSpan(p, n uintptr) (start, end uintptr) {
	const page = 4096
	return (p + page - 1) &^ (page - 1), (p + n) &^ (page - 1)
}

// prefault writes a zero word to each page of a freshly allocated (so
// all-zero) slice of pointers. While a cycle marks, a pointer store's
// write barrier first reads the slot it overwrites: on an untouched page
// that read maps the kernel's shared zero page, and the store right
// after it takes a second, copy-on-write fault whose TLB flush
// interrupts the other core (do_wp_page, flush_tlb_mm_range: a tenth of
// concatLists' CPU). A plain store first takes one fault, no flush.
// Storing a zero word over a zero word (a nil pointer or a zero string
// length) needs no write barrier, so it is written as an integer. Where
// the kernel can, all pages are mapped in one call (populate).
func prefault[T any](s []T) {
	n := uintptr(cap(s)) * unsafe.Sizeof(*new(T))
	if n < prefaultMin {
		return
	}
	p := unsafe.Pointer(unsafe.SliceData(s))
	if populate(p, n) {
		return
	}
	for off := uintptr(0); off < n; off += 4096 {
		*(*uintptr)(unsafe.Add(p, off)) = 0
	}
}
