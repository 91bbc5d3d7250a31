// Package growth tells linear work from quadratic in tests: how much more
// memory work allocates at 4n than at n, which unlike a time holds on a
// loaded machine.
package growth

import (
	"runtime"
	"testing"
)

// Alloc runs work at size n and at 4n and returns how many times more
// bytes the second run allocated: about 4 for work linear in n, about 16
// for work quadratic in n.
func Alloc(n int, work func(n int) error) (float64, error) {
	measure := func(n int) (uint64, error) {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err := work(n)
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc, err
	}
	a, err := measure(n)
	if err != nil {
		return 0, err
	}
	b, err := measure(4 * n)
	if err != nil {
		return 0, err
	}
	return float64(b) / float64(max(a, 1)), nil
}

// MaxLinear is what Alloc may return for work linear in n, with room for
// fixed costs and the runtime's own allocations.
const MaxLinear = 7

// Linear fails t unless work allocates about linearly in n from n to 4n;
// what names the work in the message ("a NAR 4x as deep").
func Linear(t testing.TB, what string, n int, work func(n int) error) {
	t.Helper()
	g, err := Alloc(n, work)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s allocates %.1fx as much", what, g)
	if g > MaxLinear {
		t.Errorf("%s allocates %.1fx as much, want linear growth (about 4x)", what, g)
	}
}
