package evalcli

import (
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// hugeHeapSize is how much heap is prepared for huge pages: more than
// most evaluations need; address space only until touched.
const hugeHeapSize = 512 << 20

var hugeOnce sync.Once

// The collector's pace for instantiating (see tuneGCPercent), from the
// 10,000-derivation benchmarks (scripts/bench-derivation,
// docs/benchmarks-derivation.md). Read-only, 40 keeps the peak near C++
// Nix's at about 1.2x the time of 100. Writing, the store's garbage
// (hashers, bbolt pages, protobufs) comes on top, while writing the
// .drv files dominates the time: 15 costs ~2x the time of 100 for ~25%
// less peak memory, still several times faster than Nix.
const (
	instantiateGCPercent = 40
	writeGCPercent       = 15
)

func prepareHuge(getenv func(string) string) {
	hugeOnce.Do(func() {
		if getenv("TVIX_HUGEPAGES") != "0" {
			prepareHugeHeap(hugeHeapSize)
		}
	})
}

// tuneGCPercent paces the collector by the live heap alone (GOGC=pct,
// no floor), for instantiating, and prepares huge pages like tuneGC.
// GOGC or GOMEMLIMIT in the environment switch it off.
func tuneGCPercent(getenv func(string) string, pct int) (stop func()) {
	prepareHuge(getenv)
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		return func() {}
	}
	old := debug.SetGCPercent(pct)
	return func() { debug.SetGCPercent(old) }
}

// tuneGC paces the collector for evaluation: up to minHeap nothing is
// collected, above it the heap may grow to ratio times the live heap of
// the last cycle. Evaluation makes many short-lived objects; collecting
// a small heap over and over (Go's default starts at 4 MB) costs more
// than it saves, and the pointer-rich live heap makes every cycle
// expensive. The limit is re-derived after each cycle from a finalizer,
// so it never falls below ratio × live (no thrashing near the limit).
// GOGC or GOMEMLIMIT in the environment switch it off.
//
// It also prepares the heap for huge pages (prepareHugeHeap), once per
// process; TVIX_HUGEPAGES=0 switches that off.
func tuneGC(getenv func(string) string, minHeap int64, ratio float64) (stop func()) {
	prepareHuge(getenv)
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		return func() {}
	}
	oldPct := debug.SetGCPercent(-1)
	oldLimit := debug.SetMemoryLimit(minHeap)
	var stopped atomic.Bool
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	var arm func()
	arm = func() {
		s := new([32]byte)
		runtime.SetFinalizer(s, func(*[32]byte) {
			if stopped.Load() {
				return
			}
			metrics.Read(sample)
			if sample[0].Value.Kind() == metrics.KindUint64 {
				limit := max(int64(float64(sample[0].Value.Uint64())*ratio), minHeap)
				debug.SetMemoryLimit(limit)
			}
			arm()
		})
	}
	arm()
	return func() {
		stopped.Store(true)
		debug.SetGCPercent(oldPct)
		if oldLimit == math.MaxInt64 || oldLimit > 0 {
			debug.SetMemoryLimit(oldLimit)
		}
	}
}
