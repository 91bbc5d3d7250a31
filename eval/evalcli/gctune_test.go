package evalcli

import (
	"runtime"
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

// tuneGC paces with a memory limit and restores the collector settings
// when stopped; GOGC in the environment leaves them alone.
func TestTuneGC(t *testing.T) {
	cases := []struct {
		name     string
		env      map[string]string
		wantTune bool
	}{
		{"default", map[string]string{"TVIX_HUGEPAGES": "0"}, true},
		{"GOGC set", map[string]string{"GOGC": "100", "TVIX_HUGEPAGES": "0"}, false},
		{"GOMEMLIMIT set", map[string]string{"GOMEMLIMIT": "1GiB", "TVIX_HUGEPAGES": "0"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			limit := func() int64 {
				s := []metrics.Sample{{Name: "/gc/gomemlimit:bytes"}}
				metrics.Read(s)
				return int64(s[0].Value.Uint64())
			}
			before := limit()
			stop := tuneGC(func(k string) string { return c.env[k] }, 123<<20, 2)
			during := limit()
			stop()
			if c.wantTune && during != 123<<20 {
				t.Errorf("memory limit while tuned = %d, want %d", during, 123<<20)
			}
			if !c.wantTune && during != before {
				t.Errorf("memory limit changed to %d with GOGC set", during)
			}
			if after := limit(); after != before {
				t.Errorf("memory limit after stop = %d, want %d", after, before)
			}
		})
	}
}
