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
// docs/benchmarks-derivation.md). Read-only, 40 keeps the peak below C++
// Nix's. Writing, the store's garbage (hashers, bbolt pages, protobufs)
// comes on top, while writing the .drv files dominates the time: 10
// keeps the peak below Nix's, still several times faster. Below the
// floor (32 MB, under the peak of both benchmarks) the heap grows
// before it is collected: a third to 40% less CPU time, the same peak.
const (
	instantiateGCPercent = 40
	writeGCPercent       = 10
	instantiateGCFloor   = 32 << 20
)

func prepareHuge(getenv func(string) string) {
	hugeOnce.Do(func() {
		if getenv("TVIX_HUGEPAGES") != "0" {
			prepareHugeHeap(hugeHeapSize)
		}
	})
}

// tuneGCPercent paces the collector by the live heap (GOGC=pct) for
// instantiating, but lets the heap reach floor bytes before collecting
// at that pace: while the heap is small, collecting it every few MB
// costs time (each cycle also scans the deep stacks of dependency
// chains) and saves nothing, as the peak comes later with the larger
// heap. The percentage is re-derived after each cycle from a finalizer.
// It prepares huge pages like tuneGC when huge is set: they save a
// third of the CPU time of evaluating, but a heap of this size (~50 MB)
// in 2 MB pages is resident ~3-5 MB beyond what it holds; writing, where
// the store's work dominates the time, does without. GOGC or GOMEMLIMIT
// in the environment switch the pacing off.
func tuneGCPercent(getenv func(string) string, pct int, floor int64, huge bool) (stop func()) {
	if huge {
		prepareHuge(getenv)
	}
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		return func() {}
	}
	// Before the first cycle Go takes the live heap to be 4 MB.
	old := debug.SetGCPercent(gcPace(4<<20, pct, floor))
	var mu sync.Mutex // stop and a late finalizer: the last word is stop's
	stopped := false
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	last := -1
	var arm func()
	arm = func() {
		s := new([32]byte)
		runtime.SetFinalizer(s, func(*[32]byte) {
			mu.Lock()
			defer mu.Unlock()
			if stopped {
				return
			}
			metrics.Read(sample)
			if sample[0].Value.Kind() == metrics.KindUint64 {
				if p := gcPace(int64(sample[0].Value.Uint64()), pct, floor); p != last {
					last = p
					debug.SetGCPercent(p)
				}
			}
			arm()
		})
	}
	arm()
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		debug.SetGCPercent(old)
	}
}

// gcPace is the GC percentage for a live heap of live bytes: pct, or
// more while that would collect before the heap reaches floor.
func gcPace(live int64, pct int, floor int64) int {
	p := pct
	if live > 0 && live*int64(100+pct)/100 < floor {
		p = min(int(100*(floor-live)/live), 1000)
	}
	return max(p, pct)
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
