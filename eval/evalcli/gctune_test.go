package evalcli

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
)

func heapObjects() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// The block prepareHugeHeap maps must be handed back: the heap does not
// grow by it.
func TestPrepareHugeHeapFreesBlock(t *testing.T) {
	runtime.GC()
	before := heapObjects()
	prepareHugeHeap(32 << 20)
	runtime.GC()
	if after := heapObjects(); after > before+16<<20 {
		t.Fatalf("heap objects grew from %d to %d bytes", before, after)
	}
}

// tuneGC paces by a GC percentage (the floor over Go's assumed 4 MB
// before the first cycle) and restores the old one when stopped; GOGC or
// GOMEMLIMIT in the environment leave it alone.
func TestTuneGC(t *testing.T) {
	cases := []struct {
		name     string
		env      map[string]string
		wantTune bool
		wantPct  int // the first cycle at 32 MB; synchronous: a backstop at 44 MB
		wantPoll bool
	}{
		{"default", map[string]string{"TVIX_HUGEPAGES": "0"}, true, 1100, true},
		{"concurrent", map[string]string{"TVIX_HUGEPAGES": "0", "TVIX_GC_SYNC": "0"}, true, 800, false},
		{"GOGC set", map[string]string{"GOGC": "100", "TVIX_HUGEPAGES": "0"}, false, 0, false},
		{"GOMEMLIMIT set", map[string]string{"GOMEMLIMIT": "1GiB", "TVIX_HUGEPAGES": "0"}, false, 0, false},
	}
	pct := func() int {
		p := debug.SetGCPercent(100)
		debug.SetGCPercent(p)
		return p
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := pct()
			stop, poll := tuneGC(func(k string) string { return c.env[k] }, evalPace{floor: 36 << 20, ratio: 2, allocFrac: 0.5})
			during := pct()
			if (poll != nil) != c.wantPoll {
				t.Errorf("poll = %v, want one: %v", poll != nil, c.wantPoll)
			}
			if poll != nil {
				poll() // (collects if the test's heap is past 32 MB)
			}
			stop()
			if c.wantTune && during != c.wantPct {
				t.Errorf("GC percentage while tuned = %d, want %d", during, c.wantPct)
			}
			if !c.wantTune && during != before {
				t.Errorf("GC percentage changed to %d with %v", during, c.env)
			}
			if after := pct(); after != before {
				t.Errorf("GC percentage after stop = %d, want %d", after, before)
			}
		})
	}
}

// evalPercent puts the next cycle at the target heap, never below twice
// the live heap.
func TestEvalPercent(t *testing.T) {
	cases := []struct {
		live, target int64
		want         int
	}{
		{4 << 20, 32 << 20, 700},
		{40 << 20, 112 << 20, 180},
		{40 << 20, 60 << 20, 100},
		{0, 32 << 20, 3100}, // (nothing live yet: counted as 1 MB)
	}
	for _, c := range cases {
		if got := evalPercent(c.live, c.target); got != c.want {
			t.Errorf("evalPercent(%d MB, %d MB) = %d, want %d", c.live>>20, c.target>>20, got, c.want)
		}
	}
}

// tuneGCPercent paces by GOGC=pct while tuned and restores the old
// percentage; GOGC or GOMEMLIMIT in the environment leave it alone.
func TestTuneGCPercent(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		pct  int
		huge bool
		want int // percentage while tuned; 0: unchanged
	}{
		{"read-only", map[string]string{"TVIX_HUGEPAGES": "0"}, instantiateGCPercent, true, instantiateGCPercent},
		{"writing", nil, writeGCPercent, false, writeGCPercent},
		{"GOGC set", map[string]string{"GOGC": "100"}, writeGCPercent, false, 0},
		{"GOMEMLIMIT set", map[string]string{"GOMEMLIMIT": "1GiB"}, writeGCPercent, false, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := debug.SetGCPercent(77)
			defer debug.SetGCPercent(before)
			stop := tuneGCPercent(func(k string) string { return c.env[k] }, c.pct, 0, c.huge)
			during := debug.SetGCPercent(-1)
			debug.SetGCPercent(during)
			stop()
			want := c.want
			if want == 0 {
				want = 77
			}
			if during != want {
				t.Errorf("GC percent while tuned = %d, want %d", during, want)
			}
			if after := debug.SetGCPercent(77); after != 77 {
				t.Errorf("GC percent after stop = %d, want 77", after)
			}
		})
	}
}

func TestGCPace(t *testing.T) {
	cases := []struct {
		live  int64
		pct   int
		floor int64
		want  int
	}{
		{live: 4 << 20, pct: 40, floor: 32 << 20, want: 700},
		{live: 16 << 20, pct: 40, floor: 32 << 20, want: 100},
		{live: 30 << 20, pct: 40, floor: 32 << 20, want: 40}, // 1.4x live is past the floor
		{live: 100 << 20, pct: 10, floor: 32 << 20, want: 10},
		{live: 1 << 10, pct: 40, floor: 32 << 20, want: 1000}, // capped
		{live: 0, pct: 40, floor: 32 << 20, want: 40},
		{live: 4 << 20, pct: 40, floor: 0, want: 40},
	}
	for _, c := range cases {
		if got := gcPace(c.live, c.pct, c.floor); got != c.want {
			t.Errorf("gcPace(%d, %d, %d) = %d, want %d", c.live, c.pct, c.floor, got, c.want)
		}
	}
}

// The evaluation limit follows whichever is largest: the floor, the live
// heap's headroom, the share of all bytes allocated.
func TestEvalPaceLimit(t *testing.T) {
	p := evalPace{floor: 32 << 20, ratio: 2, extra: 32 << 20, allocFrac: 0.5}
	cases := []struct {
		live, allocs, want int64
	}{
		{live: 0, allocs: 20 << 20, want: 32 << 20},           // nothing live: the floor
		{live: 40 << 20, allocs: 60 << 20, want: 112 << 20},   // mostly live: 2x live + extra
		{live: 40 << 20, allocs: 400 << 20, want: 200 << 20},  // mostly garbage: half the allocations
		{live: 300 << 20, allocs: 400 << 20, want: 632 << 20}, // large live heap
	}
	g := p
	g.garbage, g.garbageCap = 4, 320<<20
	gcases := []struct {
		live, allocs, want int64
	}{
		{live: 40 << 20, allocs: 60 << 20, want: 112 << 20},   // mostly live: 2x live + extra
		{live: 40 << 20, allocs: 100 << 20, want: 240 << 20},  // 4x the 60 MB collected
		{live: 40 << 20, allocs: 400 << 20, want: 320 << 20},  // up to the cap
		{live: 10 << 20, allocs: 1200 << 20, want: 320 << 20}, // half the allocations: capped too
		{live: 300 << 20, allocs: 400 << 20, want: 632 << 20}, // large live heap: above the cap
	}
	for _, c := range gcases {
		if got := g.limit(c.live, c.allocs); got != c.want {
			t.Errorf("garbage pace: limit(%d MB live, %d MB allocated) = %d MB, want %d MB", c.live>>20, c.allocs>>20, got>>20, c.want>>20)
		}
	}
	for _, c := range cases {
		if got := p.limit(c.live, c.allocs); got != c.want {
			t.Errorf("limit(%d MB live, %d MB allocated) = %d MB, want %d MB", c.live>>20, c.allocs>>20, got>>20, c.want>>20)
		}
	}
}

// After a cycle that found most of the bytes allocated since the last one
// live, the headroom over the live heap is keptExtra.
func TestEvalPaceLimitKept(t *testing.T) {
	p := evalPace{floor: 26 << 20, ratio: 2, extra: 32 << 20, allocFrac: 0.5, keptShare: 0.85, keptExtra: 64 << 20}
	cases := []struct {
		kept float64
		want int64
	}{
		{kept: 0.5, want: 112 << 20},  // 2x live + extra
		{kept: 0.84, want: 112 << 20}, // below the share
		{kept: 0.85, want: 144 << 20}, // 2x live + keptExtra
		{kept: 1, want: 144 << 20},
	}
	for _, c := range cases {
		if got := p.limitKept(40<<20, 60<<20, 60<<20, c.kept); got != c.want {
			t.Errorf("limitKept(40 MB live, 60 MB allocated, %.2f kept) = %d MB, want %d MB", c.kept, got>>20, c.want>>20)
		}
	}
	if got := (evalPace{floor: 26 << 20, ratio: 2, extra: 32 << 20}).limitKept(40<<20, 60<<20, 60<<20, 1); got != 112<<20 {
		t.Errorf("without keptExtra: %d MB, want 112 MB", got>>20)
	}
}

// After a cycle that found a good share of the bytes allocated since the
// last one live, the heap may hold keptGarbage times the bytes collected.
func TestEvalPaceLimitKeptGarbage(t *testing.T) {
	p := evalPace{floor: 26 << 20, ratio: 2, extra: 32 << 20, allocFrac: 0.5, garbage: 4, garbageCap: 320 << 20,
		keptShare: 0.85, keptExtra: 64 << 20, keptGarbageShare: 0.4, keptGarbage: 6}
	cases := []struct {
		allocs int64
		kept   float64
		want   int64
	}{
		{allocs: 70 << 20, kept: 0.3, want: 120 << 20},  // 4x the 30 MB collected
		{allocs: 70 << 20, kept: 0.4, want: 180 << 20},  // 6x
		{allocs: 200 << 20, kept: 0.5, want: 320 << 20}, // up to garbageCap
	}
	for _, c := range cases {
		if got := p.limitKept(40<<20, c.allocs, c.allocs, c.kept); got != c.want {
			t.Errorf("limitKept(40 MB live, %d MB allocated, %.2f kept) = %d MB, want %d MB", c.allocs>>20, c.kept, got>>20, c.want>>20)
		}
	}
}

func TestPaceFromEnv(t *testing.T) {
	env := map[string]string{
		"TVIX_GC_MINHEAP_MB":   "40",
		"TVIX_GC_RATIO":        "150",
		"TVIX_GC_KEPT":         "85",
		"TVIX_GC_KEPTEXTRA_MB": "200",
		"TVIX_GC_DEADGARBAGE":  "200",
		"TVIX_GC_EXTRA_MB":     "x",  // not a number: ignored
		"TVIX_GC_GARBAGE":      "-1", // below its least: ignored
	}
	got := paceFromEnv(func(k string) string { return env[k] }, defaultEvalPace)
	want := defaultEvalPace
	want.floor, want.ratio, want.keptShare, want.keptExtra, want.deadGarbage = 40<<20, 1.5, 0.85, 200<<20, 2
	if got != want {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if got := paceFromEnv(func(string) string { return "" }, defaultEvalPace); got != defaultEvalPace {
		t.Errorf("no overrides changed the pace: %+v", got)
	}
	env = map[string]string{"TVIX_GC_MINHEAP_MB": "0", "TVIX_GC_RATIO": "99"} // below their least
	if got := paceFromEnv(func(k string) string { return env[k] }, defaultEvalPace); got != defaultEvalPace {
		t.Errorf("values below the least were taken: %+v", got)
	}
}

// Where C++ Nix would have allocated less (the long lists of `++`, at
// half the bytes), the garbage rule keeps the heap at the same share of
// Nix's allocations: 40 MB when 30 MB of Nix's bytes are behind it and
// half of what comes is list items, as then Nix has allocated 50.
func TestEvalPaceLimitNix(t *testing.T) {
	p := evalPace{floor: 26 << 20, ratio: 2, extra: 32 << 20, allocFrac: 0.5, garbage: 4, garbageCap: 320 << 20}
	cases := []struct {
		live, allocs, nix, want int64
	}{
		{live: 2 << 20, allocs: 60 << 20, nix: 60 << 20, want: 232 << 20},     // as limit: 4x the 58 MB collected
		{live: 2 << 20, allocs: 60 << 20, nix: 70 << 20, want: 232 << 20},     // never above limit
		{live: 0, allocs: 60 << 20, nix: 30 << 20, want: 40 << 20},            // 0.8 of the 50 MB then
		{live: 0, allocs: 100 << 20, nix: 75 << 20, want: 150 << 20},          // 0.8 × (75 + 0.75 × 150)
		{live: 4 << 20, allocs: 30 << 20, nix: 20 << 20, want: 40 << 20},      // 2x live + extra above it
		{live: 0, allocs: 1000 << 20, nix: 600 << 20, want: 320 << 20},        // up to the cap
		{live: 300 << 20, allocs: 400 << 20, nix: 250 << 20, want: 632 << 20}, // large live heap
	}
	for _, c := range cases {
		got := p.limitNix(c.live, c.allocs, c.nix)
		if d := got - c.want; d < -1<<10 || d > 1<<10 {
			t.Errorf("limitNix(%d MB live, %d MB allocated, %d MB in Nix's bytes) = %.2f MB, want %d MB",
				c.live>>20, c.allocs>>20, c.nix>>20, float64(got)/(1<<20), c.want>>20)
		}
	}
}

// After a cycle that found almost nothing of what was allocated since
// the last one live, the heap may hold only deadGarbage times the bytes
// collected: marking a tiny live heap costs less than faulting in the
// fresh pages of more garbage.
func TestEvalPaceLimitDead(t *testing.T) {
	p := evalPace{floor: 26 << 20, ratio: 2, extra: 32 << 20, allocFrac: 0.5, garbage: 4, garbageCap: 320 << 20,
		keptShare: 0.85, keptExtra: 200 << 20, keptGarbageShare: 0.4, keptGarbage: 6, deadShare: 0.05, deadGarbage: 1}
	cases := []struct {
		live, allocs int64
		kept         float64
		want         int64
	}{
		{live: 1 << 20, allocs: 100 << 20, kept: 0.04, want: 99 << 20},  // 1x the 99 MB collected
		{live: 1 << 20, allocs: 100 << 20, kept: 0.05, want: 320 << 20}, // from the share on, 4x (capped)
		{live: 1 << 20, allocs: 30 << 20, kept: 0.01, want: 34 << 20},   // 2x live + extra above it
		{live: 1 << 20, allocs: 100 << 20, kept: 0.5, want: 320 << 20},  // 6x, capped
	}
	for _, c := range cases {
		if got := p.limitKept(c.live, c.allocs, c.allocs, c.kept); got != c.want {
			t.Errorf("limitKept(%d MB live, %d MB allocated, %.2f kept) = %d MB, want %d MB", c.live>>20, c.allocs>>20, c.kept, got>>20, c.want>>20)
		}
	}
	// off without deadGarbage
	q := p
	q.deadGarbage = 0
	if got := q.limitKept(1<<20, 60<<20, 60<<20, 0.01); got != 236<<20 {
		t.Errorf("without deadGarbage: %d MB, want 236 MB", got>>20)
	}
}

func TestCollectNow(t *testing.T) {
	const mb = 1 << 20
	for _, c := range []struct {
		heap, target, goal int64
		want               bool
	}{
		{10 * mb, 26 * mb, 40 * mb, false}, // below the target
		{26 * mb, 26 * mb, 40 * mb, true},  // at it
		{39 * mb, 26 * mb, 40 * mb, true},
		{40 * mb, 26 * mb, 40 * mb, false}, // the runtime's cycle is under way
		{90 * mb, 26 * mb, 40 * mb, false},
	} {
		if got := collectNow(c.heap, c.target, c.goal); got != c.want {
			t.Errorf("collectNow(heap %d MB, target %d MB, goal %d MB) = %v, want %v", c.heap/mb, c.target/mb, c.goal/mb, got, c.want)
		}
	}
}
