package blobstore

import (
	"bytes"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// slabs hold the memory store's chunks back to back in large blocks. A
// blob store in memory holds everything it is given, and with a chunk per
// allocation every byte is first touched by a page fault on a 4 KiB page:
// importing 1 GB spent as much CPU faulting as hashing. Blocks are
// advised for transparent huge pages (where THP is in "madvise" mode, the
// Debian default), so a fault maps 2 MiB at once.
type slabs struct {
	mu   sync.Mutex
	cur  []byte // unused tail of the current block
	last []byte // the most recent allocation, which giveBack can undo
}

const (
	slabSize = 64 << 20
	// Chunks larger than this get their own allocation, so a block is not
	// abandoned half empty for one big chunk.
	slabMaxChunk = 4 << 20
)

var thpMadvise = sync.OnceValue(func() bool {
	mode, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	return err == nil && bytes.Contains(mode, []byte("[madvise]"))
})

// copy returns a copy of data that lives as long as the store.
func (s *slabs) copy(data []byte) []byte {
	if len(data) > slabMaxChunk {
		return append([]byte(nil), data...)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.cur) < len(data) {
		s.cur = newSlab()
	}
	c := s.cur[:len(data):len(data)]
	s.cur = s.cur[len(data):]
	copy(c, data)
	s.last = c
	return c
}

// giveBack returns an aborted put's chunk; only the latest allocation can
// be taken back (with concurrent writers an earlier one stays, as garbage
// the size of the aborted chunks, until the store is dropped).
func (s *slabs) giveBack(c []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(c) > 0 && len(s.last) == len(c) && &s.last[0] == &c[0] {
		s.cur = unsafe.Slice(&c[0], len(c)+cap(s.cur))
		s.last = nil
	}
}

func newSlab() []byte {
	const huge = 2 << 20
	b := make([]byte, slabSize)
	if thpMadvise() {
		p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
		beg := (p+huge-1)&^(huge-1) - p
		if end := (p+slabSize)&^(huge-1) - p; beg < end {
			// A failure only loses the speed-up.
			_ = syscall.Madvise(b[beg:end], syscall.MADV_HUGEPAGE)
		}
	}
	return b
}
