//go:build linux

package evalcli

import (
	"bufio"
	"debug/elf"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// releaseImage takes the executable's read-only pages out of the
// process (madvise MADV_DONTNEED) once the program has started, before
// it evaluates: they stay in the page cache, and what the evaluation
// runs faults back in. The package inits of the whole binary (gRPC,
// protobuf descriptors, the S3 client, FUSE, markdown, ...) leave ~17
// of a trivial evaluation's 21 MB resident, of which evaluating needs
// ~7: every evaluation's peak carried ~10 MB of code and data it never
// ran (import-many of 4,000 files 43.7 -> 33.8 MB, ctx-concatsep of
// 5,000 44.6 -> 35.7 MB; text 6.8 MB of it, rodata 2.6). It costs
// ~0.15 ms and 80-200 more minor faults, ~0.6 ms of task-clock (perf
// stat, medians of 7-9 interleaved runs: trivial 6.8 -> 7.5 ms,
// import-many 73.2 -> 74.1, string-builders 63.9 -> 64.7, drv-contexts
// 81.3 -> 82.6, lists 98.7 -> 97.3, closures 56.9 -> 55.4, modules and
// lib-modules within their noise). TVIX_KEEP_IMAGE=1 keeps it.
//
// Only read-only mappings are released, which hold the file's bytes
// as they are: not when the binary has a RELRO segment (a loader's
// relocations, written before it was made read-only, would be lost;
// Go's own linker makes none for an executable).
func releaseImage() {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return
	}
	ro := true
	if f, err := elf.Open(exe); err == nil {
		for _, p := range f.Progs {
			if p.Type == elf.PT_GNU_RELRO {
				ro = false
			}
		}
		f.Close()
	} else {
		return
	}
	maps, err := os.Open("/proc/self/maps")
	if err != nil {
		return
	}
	defer maps.Close()
	type span struct{ lo, hi uint64 }
	var drop []span
	sc := bufio.NewScanner(maps)
	for sc.Scan() {
		// "lo-hi perms offset dev inode path"
		fs := strings.Fields(sc.Text())
		if len(fs) != 6 || fs[5] != exe || !(fs[1] == "r-xp" || ro && fs[1] == "r--p") {
			continue
		}
		lo, hi, _ := strings.Cut(fs[0], "-")
		a, err1 := strconv.ParseUint(lo, 16, 64)
		z, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 == nil && err2 == nil && z > a {
			drop = append(drop, span{a, z})
		}
	}
	for _, s := range drop {
		syscall.Syscall(syscall.SYS_MADVISE, uintptr(s.lo), uintptr(s.hi-s.lo), uintptr(syscall.MADV_DONTNEED))
	}
}
