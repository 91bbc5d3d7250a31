package evalcli

import (
	"bytes"
	"os"
	"runtime/debug"
	"syscall"
	"unsafe"
)

// prepareHugeHeap maps size bytes of Go heap up front, asks the kernel to
// back that range with transparent huge pages, and hands it back to the
// runtime unused; later small allocations reuse the advised range.
// Evaluation touches hundreds of MB of fresh memory, and with 4 KB pages
// the page faults and TLB misses cost about as much as the evaluation
// itself (lib-modules: ~40% less CPU with huge pages). Only needed when
// THP is in "madvise" mode (the Debian default); nothing is touched here,
// so the resident size does not change.
func prepareHugeHeap(size int) {
	mode, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil || !bytes.Contains(mode, []byte("[madvise]")) {
		return
	}
	if oc, err := os.ReadFile("/proc/sys/vm/overcommit_memory"); err != nil || bytes.HasPrefix(oc, []byte("2")) {
		// strict accounting: the address space would be charged
		return
	}
	const huge = 2 << 20
	// no collection for the block's own sake
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	b := make([]byte, size)
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	beg := (p+huge-1)&^(huge-1) - p
	if end := (p+uintptr(size))&^(huge-1) - p; beg < end {
		// a failure only loses the speed-up
		_ = syscall.Madvise(b[beg:end], syscall.MADV_HUGEPAGE)
	}
	b = nil
	// collect the block and return its (untouched) pages to the kernel;
	// the advice stays on the mapping
	debug.FreeOSMemory()
}
