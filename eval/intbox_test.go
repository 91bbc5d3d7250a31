package eval

import (
	"math"
	"runtime"
	"testing"
)

// TestBoxInt: boxInt's Values are Ints like any other, each keeping its
// own number across slabs and collections.
func TestBoxInt(t *testing.T) {
	ev := New(Options{})
	var want []Int
	var got []Value
	for i := range 5 * intBoxes {
		n := Int(i*7919 - 300)
		want, got = append(want, n), append(got, ev.boxInt(n))
		if i%intBoxes == 3 {
			runtime.GC()
		}
	}
	for _, n := range []Int{0, 255, 256, -1, math.MaxInt64, math.MinInt64} {
		want, got = append(want, n), append(got, ev.boxInt(n))
	}
	runtime.GC()
	for i, v := range got {
		n, ok := v.(Int)
		if !ok || n != want[i] {
			t.Fatalf("box %d: %#v (%T), want Int %d", i, v, v, want[i])
		}
		if v != Value(want[i]) {
			t.Errorf("box %d: %v is not == the runtime's box of %d", i, v, want[i])
		}
	}
	if s := ev.boxInt(300); s != ev.boxInt(300) {
		t.Errorf("two boxes of 300 compare unequal")
	}
}
