package eval

import "testing"

// A fold appending to a list makes few calls but copies many items: the
// copies count toward Options.Periodic (the collector's poll) and toward
// CopiedListBytes, so that the pace sees them.
func TestPeriodicCountsCopiedItems(t *testing.T) {
	polls := 0
	ev := New(Options{Periodic: func() { polls++ }})
	before := CopiedListBytes()
	// 3,000 calls; ~4.5 million items copied, ~70,000 steps at 64 items a step
	v, err := ev.EvalExpr(`builtins.length (builtins.foldl' (acc: i: acc ++ [ i ]) [ ] (builtins.genList (i: i) 3000))`, "«string»", "/")
	if err != nil {
		t.Fatal(err)
	}
	if got := PrintValue(ev, v, true); got != "3000" {
		t.Fatalf("length = %s", got)
	}
	if polls < 20 {
		t.Errorf("%d polls, want at least 20 (one per %d steps)", polls, PeriodicSteps)
	}
	// items of lists of 64 or more: 8 bytes each more than Nix's
	if d := CopiedListBytes() - before; d < 8*4_400_000 || d > 8*4_500_000 {
		t.Errorf("CopiedListBytes grew by %d, want ~8 × 4.5 million", d)
	}
}
