package evalcli

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"

	"github.com/tvix-go/tvix/eval"
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

// prepareHuge prepares huge pages when TVIX_HUGEPAGES=1. It was the
// default until 2026-12-02, when measurements on this VM (kernel 6.18,
// 16 KB multi-size THP "always") showed 2 MB pages costing more than
// they saved: their first touch is several times the CPU of 16 KB
// folios (modules ×10 with the collector off: 2.9 s instead of 0.8 s;
// lib-modules 1.02 s instead of 0.73 s; strings 1.22 instead of 0.62 s),
// as a 2 MB page is cleared in full, and the collector recycles small
// pages anyway.
func prepareHuge(getenv func(string) string) {
	hugeOnce.Do(func() {
		if getenv("TVIX_HUGEPAGES") == "1" {
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
// It prepares huge pages like tuneGC when huge is set (and
// TVIX_HUGEPAGES=1; see prepareHuge); writing never does. GOGC or GOMEMLIMIT
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

// tuneGC paces the collector for evaluation: after each cycle (from a
// finalizer) the GC percentage is re-derived so that the next cycle
// comes when the heap reaches p.limit of the live heap and of the bytes
// allocated so far. (A memory limit, as before, lagged: the finalizer
// runs after the cycle, and a mostly live heap already above the old
// limit started another cycle at once, a wasted one over the whole heap
// (concatLists of 800,000: 5 cycles where 3 do). A percentage applies
// to the heap the cycle just marked, so until the finalizer raises it
// the goal is at least twice that.) GOGC or GOMEMLIMIT in the
// environment switch it off.
//
// The cycles are synchronous (unless TVIX_GC_SYNC=0): poll, called by
// the evaluator every few thousand thunk forces and calls (eval.Options.Periodic),
// collects with runtime.GC once the heap reaches the limit, and the
// percentage only sets a backstop a quarter above it for evaluation that
// allocates much without forcing. A concurrent cycle on two cores ran
// the evaluation beside the marking for as long as it lasted, with the
// write barrier on, allocating black, and the other core's idle mark
// worker mostly looking for work (lib-modules: 76 of its cycles' 146 ms
// of CPU); while runtime.GC waits, both cores mark and nothing else runs
// (GODEBUG=gcstoptheworld=1 took lib-modules from 510 to 417 ms,
// modules 122 to 111 ms task-clock).
//
// It also prepares the heap for huge pages (prepareHugeHeap), once per
// process, when TVIX_HUGEPAGES=1.
func tuneGC(getenv func(string) string, p evalPace) (stop, poll func()) {
	prepareHuge(getenv)
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		return func() {}, nil
	}
	synchronous := getenv("TVIX_GC_SYNC") != "0"
	// Before the first cycle Go takes the live heap to be 4 MB, and its
	// goal is the percentage of that: at p.floor - 4 MB.
	first := p.floor - 4<<20
	var target atomic.Int64 // where poll collects
	if synchronous {
		target.Store(first)
		first = backstop(first)
	}
	oldPct := debug.SetGCPercent(evalPercent(4<<20, first+4<<20))
	var stopped atomic.Bool
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/heap/allocs:bytes"}, {Name: "/gc/cycles/total:gc-cycles"}}
	// not counting what came before, the huge-page block above above all
	metrics.Read(sample)
	base := int64(0)
	if sample[1].Value.Kind() == metrics.KindUint64 {
		base = int64(sample[1].Value.Uint64())
	}
	copiedBase := eval.CopiedListBytes()
	var mu sync.Mutex              // update from poll and from the finalizer
	var prevLive, prevAllocs int64 // as of the cycle before
	var cycles uint64              // the last cycle update saw
	update := func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped.Load() {
			return
		}
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 || sample[1].Value.Kind() != metrics.KindUint64 ||
			sample[2].Value.Kind() != metrics.KindUint64 || sample[2].Value.Uint64() == cycles {
			return
		}
		cycles = sample[2].Value.Uint64()
		live := int64(sample[0].Value.Uint64())
		allocs := int64(sample[1].Value.Uint64()) - base
		kept := 0.0
		if d := allocs - prevAllocs; d > 0 {
			kept = float64(live-prevLive) / float64(d)
		}
		prevLive, prevAllocs = live, allocs
		paced := live
		if synchronous && cycles == 1 {
			// the pace was tuned with concurrent cycles, which counted
			// as live what was allocated while they marked, the most at
			// the first (a third more, later an eighth): the first cycle
			// of fixpoint-overlays (64 MB allocated in all) found 12-13
			// MB live concurrently, 9-10 MB synchronously, and without
			// this a second cycle followed at 52 MB (1.15x -> 1.46x Nix's
			// CPU). (At every cycle, lib-modules' third came at 135
			// instead of 113 MB, marking 95 instead of 80 MB.)
			paced += live / 4
		}
		// the rules by allocations count them as C++ Nix would have
		// made them (kept above is a share of Go's bytes): its peak,
		// which they were tuned against, is about its allocations, and
		// the items of `++`'s long lists are half the size there. A fold
		// appending to a list (append-fold: 200 MB allocated at 5,000,
		// almost all copied items, a tenth of a MB live) had its heap
		// held 4x the 26 MB collected at its first cycle, 104 MB, where
		// C++ Nix had allocated about half of it.
		lim := p.limitKept(paced, allocs, allocs-(eval.CopiedListBytes()-copiedBase), kept)
		target.Store(lim)
		if synchronous {
			lim = backstop(lim)
		}
		debug.SetGCPercent(evalPercent(live, lim))
	}
	var arm func()
	arm = func() {
		s := new([32]byte)
		runtime.SetFinalizer(s, func(*[32]byte) {
			update()
			if !stopped.Load() {
				arm()
			}
		})
	}
	arm()
	if synchronous {
		// objects and the free space of spans in use: the heap the
		// runtime's own goal measures
		heap := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"},
			{Name: "/gc/heap/goal:bytes"}, {Name: "/gc/cycles/total:gc-cycles"}}
		var seen uint64 // the cycles poll has paced from
		poll = func() {
			metrics.Read(heap)
			for _, h := range heap {
				if h.Value.Kind() != metrics.KindUint64 {
					return
				}
			}
			if c := heap[3].Value.Uint64(); c != seen {
				// a cycle of the runtime's own (the backstop, crossed
				// inside a large allocation) came since: pace from it
				// before its finalizer does
				seen = c
				update()
			}
			if collectNow(int64(heap[0].Value.Uint64()+heap[1].Value.Uint64()), target.Load(), int64(heap[2].Value.Uint64())) {
				runtime.GC()
				// now, not when the finalizer runs: until then the old
				// target may be below the live heap
				update()
				metrics.Read(heap[3:])
				seen = heap[3].Value.Uint64()
			}
		}
	}
	return func() {
		stopped.Store(true)
		mu.Lock()
		defer mu.Unlock()
		debug.SetGCPercent(oldPct)
	}, poll
}

// collectNow: poll collects a heap of heap bytes once it reaches target,
// unless it is past the runtime's own goal. Then the runtime's cycle is
// under way (the backstop was crossed inside a large allocation, before
// any poll), and runtime.GC would wait for it and then mark the same
// heap again: concatLists of 400,000 collected twice in 3 of 4 runs,
// the second cycle marking the 31 MB the first had just marked (~35 ms
// of CPU; evcpu's measurement in the ninth pass: 129 -> 112 ms).
func collectNow(heap, target, goal int64) bool { return heap >= target && heap < goal }

// backstop is the runtime's own goal beside synchronous cycles at
// target: far enough above it that the evaluator's poll comes first.
func backstop(target int64) int64 { return target + target/4 + 4<<20 }

// evalPercent is the GC percentage that puts the next cycle at a heap
// of target bytes after a cycle that left live bytes.
func evalPercent(live, target int64) int {
	live = max(live, 1<<20)
	return int(max(100*(target-live)/live, 100))
}

// evalPace is the collector's pace for evaluation. C++ Nix (Boehm GC,
// initial heap up to 384 MB) collects almost never, so its peak is about
// what it allocated; a Go collector with a fixed floor (200 MB, before)
// made small evaluations peak at twice Nix's, and GOGC pacing from 4 MB
// collects a pointer-rich heap over and over. So the heap may grow to a
// share of what the evaluation has allocated so far: the peak stays a
// fraction of the allocation volume (Nix's peak), and as the allocated
// total at least doubles between cycles, an evaluation collects a few
// times, not once per live-heap doubling. The limit never falls below
// ratio × the live heap plus extra (no thrashing; the extra spares a
// heap that is mostly live, as the module system's, a cycle per
// doubling while it is small) nor below floor. Where the heap is mostly
// live, that still collects it once per doubling; so the heap may also
// hold garbage × the bytes collected so far (garbage 4: the heap stays
// under 80% of what was allocated, below Nix's peak, which is about its
// allocations), up to garbageCap (C++ Nix collects past its 384 MB
// initial heap, its peak stays ~415 MB).
type evalPace struct {
	floor     int64   // bytes collected before the first cycle
	ratio     float64 // headroom over the live heap
	extra     int64   // and bytes on top
	allocFrac float64 // share of the bytes allocated so far
	// garbage: the heap may hold this many times the bytes collected so
	// far (allocated minus live); this and allocFrac up to garbageCap
	garbage    float64
	garbageCap int64
	// keptExtra replaces extra after a cycle that found at least
	// keptShare of the bytes allocated since the last one live
	keptShare float64
	keptExtra int64
	// keptGarbage replaces garbage after a cycle that found at least
	// keptGarbageShare of the bytes allocated since the last one live
	keptGarbageShare float64
	keptGarbage      float64
	// deadGarbage replaces garbage after a cycle that found less than
	// deadShare of the bytes allocated since the last one live
	deadShare   float64
	deadGarbage float64
}

// defaultEvalPace: floor of the size of Nix's trivial evaluation (~25 MB
// peak, of which the Go runtime and binary take ~15; 26 MB of heap since
// the pace is a GC percentage, which leaves the runtime's own memory
// out: 32 MB put closures, drv-contexts, escaping, string-builders at
// 1.01-1.08x Nix's peak, 26 MB at 0.9x, the same CPU); extra and
// allocFrac from eval-bench and the scaling benchmarks
// (docs/benchmarks-eval.md): extra 32 MB took a third off the CPU time
// of genericClosure (160k nodes) and joining 20,000 outPaths, peaking
// at Nix's RSS; 64 MB went past it. garbage 4 (2026-12-02): lib-modules
// 0.56-0.65 -> 0.50-0.52 s CPU at 202 MB (Nix 241 MB), modules and
// fixpoint-overlays a cycle less; 5.67 (85%) went to within 5% of Nix's
// peak on strings and fixpoint-overlays.
//
// keptShare 0.85 and keptExtra 64 MB (2026-12-02, fifth pass): a cycle
// that finds 85% or more of what was allocated since the one before
// still live is followed by one at twice the live heap plus 64 MB. The
// first cycle of concatMap finds all of it live (a list being built),
// lib-modules and json 77-80%, the others 46-63%: concatMap of 400,000
// 0.17 -> 0.10 s and concatLists of 800,000 0.36-0.44 -> 0.29-0.31 s at
// the same peak. At 0.75, lib-modules gained 0.04 s for 13 MB, and json
// at 80,000 went past Nix's peak (98 -> 106 MB), as it did at 0.8.
//
// keptExtra 200 MB (2026-12-02, seventh pass): concatLists of 800,000
// keeps 97% at its first cycle (31 MB) and all of its second (121 of
// 141 MB, 60 ms of marking) to the end, whose heap is 240 MB with or
// without collecting: 0.29 -> 0.22 s CPU, the same peak. The eval-bench
// strings case peaks at 285 instead of 238 MB (Nix 320 MB) for 0.51 ->
// 0.43 s; no other peak moved. A heap cannot outgrow what was
// allocated, and Nix's peak is about its allocations, so headroom past
// them costs nothing.
//
// keptGarbageShare 0.4 and keptGarbage 6 (2026-12-02, seventh pass): a
// cycle costs about the live heap it marks and saves the garbage it
// frees, so where much survived the last one the next may wait for more
// garbage. lib-modules' second cycle keeps 56% (41 of 70 MB), and at 6
// its third (125 MB, 89 live, 105 ms of marking) does not come: 0.46 ->
// 0.36 s CPU, 162 -> 180 MB (Nix 241 MB). append-fold keeps a tenth at
// its first, and garbage 6 there took it from 448 to 590 MB at 10,000
// (Nix 413 MB); the corpus, json and the other scaling workloads kept
// their peaks with 6 everywhere.
//
// The garbage rule in C++ Nix's bytes (2026-12-02, ninth pass; limitNix):
// `++` of long lists allocates twice Nix's bytes for the same items, and
// append-fold is almost nothing else (200 MB at 5,000, a tenth of a MB
// live). Its first cycle came from the runtime's backstop at 30 MB, as
// polls came only with its 5,000 calls, and 4x the 26 MB collected let
// the heap reach 137 MB: peak 199 MB, Nix 132 MB. Counting the copies
// toward the poll (eval's stepItems) put the cycles at the targets
// (199 -> 133 MB; 10,000 445 -> 350 MB, Nix 413); counting them at
// Nix's size in the rule, six cycles of ~1 ms where there were three:
// 96 MB at 5,000 and 323 MB at 10,000, 0.06-0.07 s CPU instead of 0.08.
// Only append-fold's cycles moved among the scaling workloads. Merely
// taking the copies' extra bytes off the allocations (4x the bytes so
// collected) still let the heap reach 123 MB at 5,000: the heap grows
// by Go's bytes, twice Nix's, so limitNix solves for the heap that is
// 0.8 of Nix's allocations when it is reached.
//
// Measured while the ninth pass released the executable's image (its
// read-only pages, ~10 MB off every peak; not kept, see
// docs/benchmarks-eval.md), and so not changed: floor 20 MB saved 2-6
// ms of task-clock on the corpus' small cases (fewer fresh pages to
// fault) but cost fixpoint-overlays 0.12 -> 0.16 s, scale CPU points
// 58 -> 57, the corpus' the same; extra 48 MB took json of 80,000 from
// 181 to 153 ms and ctx-concatsep of 20,000 from 252 to 211 ms (both
// below Nix's CPU already) but put the latter's peak past Nix's (99 vs
// 95 MB), genericClosure of 160,000 and regex of 80,000 10-13 ms slower.
//
// deadShare 0.05 and deadGarbage 1 (2026-12-02, ninth pass): after a
// cycle that found less than 5% of what was allocated since the one
// before live, the heap may hold only as much again as was collected.
// Marking costs about the live heap, ~1 ms for append-fold's 1 MB,
// while every MB the heap grows by is ~256 fresh pages to fault, ~0.4
// ms: append-fold at 5,000 75 -> 67 ms task-clock (Nix 66), 83 -> 56
// MB; at 10,000 229 -> 202 ms (Nix ~200), 304 -> 209 MB (10 cycles
// where there were 6); update-chain at 80,000 137 -> 88 MB at the same
// CPU; fib (eval-bench) a cycle more at 0.45x Nix's CPU; no other
// workload's cycles moved. Points, same runs against the tree without
// it (16:43-16:46): scale CPU 59 vs 57, corpus 16 vs 15, the rest the
// same. (GC percentage 100 everywhere, TVIX_GC_GARBAGE=100, did as
// much for append-fold; 4 was tuned for lib-modules, whose cycles keep
// 56-64%.)
var defaultEvalPace = evalPace{floor: 26 << 20, ratio: 2, extra: 32 << 20, allocFrac: 0.5, garbage: 4, garbageCap: 320 << 20,
	keptShare: 0.85, keptExtra: 200 << 20, keptGarbageShare: 0.4, keptGarbage: 6, deadShare: 0.05, deadGarbage: 1}

// limitKept is limit after a cycle that found kept (a share) of what
// was allocated since the cycle before still live: from keptShare on,
// the heap is growing by what it allocates (a package set, the module
// system's option tree, a list being built), and collecting it again
// soon would mark the same live heap for little garbage, so the
// headroom over it is keptExtra instead of extra. From keptGarbageShare
// on, the heap may hold keptGarbage times the bytes collected so far.
//
// nixAllocs is allocs counted as C++ Nix would have allocated them (see
// limitNix).
func (p evalPace) limitKept(live, allocs, nixAllocs int64, kept float64) int64 {
	if p.keptExtra > 0 && kept >= p.keptShare {
		p.extra = p.keptExtra
	}
	if p.keptGarbage > 0 && kept >= p.keptGarbageShare {
		p.garbage = max(p.garbage, p.keptGarbage)
	}
	if p.deadGarbage > 0 && kept < p.deadShare {
		p.garbage = min(p.garbage, p.deadGarbage)
	}
	return p.limitNix(live, allocs, nixAllocs)
}

// limitNix is limit where C++ Nix would have allocated nixAllocs of the
// allocs bytes (less: long lists' items are half the size there), so
// that a mostly dead heap is collected by the rules in Nix's bytes,
// which its peak is about. The garbage rule lets the heap reach
// keep = garbage / (1 + garbage) of the allocations at the next cycle;
// with r Nix bytes per byte allocated here, the heap h then has keep ×
// (nixAllocs + r × (h - live)) in it: h = keep × (nixAllocs - r × live)
// / (1 - keep × r). (r 1: garbage × (allocs - live), as limit.)
func (p evalPace) limitNix(live, allocs, nixAllocs int64) int64 {
	if nixAllocs >= allocs || allocs <= 0 || nixAllocs <= 0 {
		return p.limit(live, allocs)
	}
	r := float64(nixAllocs) / float64(allocs)
	keep := p.garbage / (1 + p.garbage)
	return p.bound(live, max(int64(float64(nixAllocs)*p.allocFrac), int64(keep*(float64(nixAllocs)-r*float64(live))/(1-keep*r))))
}

// limit is the memory limit after a cycle that left live bytes, with
// allocs bytes allocated since the start.
func (p evalPace) limit(live, allocs int64) int64 {
	// heap = keep × allocations when live + (A - allocs) = keep × A for
	// the total A allocated by then: the next cycle comes when garbage ×
	// (allocs - live) bytes are in use, garbage being keep / (1 - keep)
	return p.bound(live, max(int64(float64(allocs)*p.allocFrac), int64(float64(allocs-live)*p.garbage)))
}

// bound is the limit when the rules by allocations give g: g up to
// garbageCap, but never below ratio × live + extra nor below floor.
func (p evalPace) bound(live, g int64) int64 {
	if p.garbageCap > 0 {
		// (half of 1.2 GB allocated let append-fold of 10,000 peak at
		// 577 MB, Nix 412 MB)
		g = min(g, p.garbageCap)
	}
	return max(int64(float64(live)*p.ratio)+p.extra, g, p.floor)
}
