package eval

import (
	"math/rand"
	"testing"
)

func TestValueChunks(t *testing.T) {
	for _, n := range []int{0, 1, chunkItems - 1, chunkItems, chunkItems + 1, 3*chunkItems + 17} {
		var c valueChunks
		for i := range n {
			c.add(Int(i))
		}
		got := c.list()
		if len(got) != n {
			t.Fatalf("n=%d: list has %d items", n, len(got))
		}
		for i, v := range got {
			if v != Int(i) {
				t.Fatalf("n=%d: item %d is %v", n, i, v)
			}
		}
	}
}

// TestValueQueue checks the queue against a slice, in runs of pushes and
// pops that cross block boundaries, empty it, and grow it again.
func TestValueQueue(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	var q valueQueue
	var model []Value
	next := 0
	for round := range 400 {
		pushes := rng.Intn(3 * chunkItems / (1 + round%7))
		for range pushes {
			q.push(Int(next))
			model = append(model, Int(next))
			next++
		}
		pops := rng.Intn(len(model) + 1)
		if round%5 == 0 {
			pops = len(model) // empty it now and then
		}
		for range pops {
			if q.empty() {
				t.Fatalf("round %d: empty with %d in the model", round, len(model))
			}
			if got := q.pop(); got != model[0] {
				t.Fatalf("round %d: popped %v, want %v", round, got, model[0])
			}
			model = model[1:]
		}
		if q.empty() != (len(model) == 0) {
			t.Fatalf("round %d: empty() = %v with %d in the model", round, q.empty(), len(model))
		}
	}
	// a popped value is not kept by the queue
	if len(q.blocks) > 0 {
		for i, v := range q.blocks[0][:q.head] {
			if v != nil {
				t.Fatalf("popped slot %d still holds %v", i, v)
			}
		}
	}
}
