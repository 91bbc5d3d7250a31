package evalcli

import (
	"math"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// tuneGC makes the collector leave small heaps alone: evaluation
// allocates many short-lived objects, and collecting a heap of a few MB
// over and over costs more than it saves. Up to minHeap nothing is
// collected (GOGC off with a memory limit); once the live heap passes
// half of it, the default proportional pacing takes over. This is what a
// GC "ballast" does, without the resident memory. GOGC or GOMEMLIMIT in
// the environment switch it off.
func tuneGC(getenv func(string) string, minHeap int64) (stop func()) {
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		return func() {}
	}
	oldPct := debug.SetGCPercent(-1)
	oldLimit := debug.SetMemoryLimit(minHeap)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				metrics.Read(sample)
				if sample[0].Value.Kind() == metrics.KindUint64 && int64(sample[0].Value.Uint64()) > minHeap/2 {
					debug.SetGCPercent(100)
					debug.SetMemoryLimit(math.MaxInt64)
					<-done
					return
				}
			}
		}
	}()
	return func() {
		close(done)
		<-finished
		debug.SetGCPercent(oldPct)
		debug.SetMemoryLimit(oldLimit)
	}
}
