package blobstore

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// Requests that arrive while a commit runs share the next commit, in
// arrival order, and each gets the answer for its own request; a lone
// request runs at once.
func TestBarrierCoalescesAndAnswersEach(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var batches [][]int
	g := newBarrier(func(batch []int) []error {
		mu.Lock()
		batches = append(batches, append([]int(nil), batch...))
		first := len(batches) == 1
		mu.Unlock()
		if first {
			<-release
		}
		errs := make([]error, len(batch))
		for i, r := range batch {
			if r%2 == 1 {
				errs[i] = fmt.Errorf("request %d failed", r)
			}
		}
		return errs
	})

	lone := make(chan error, 1)
	go func() { lone <- g.wait(0) }()
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(batches) == 1 })

	const n = 8
	errs := make([]chan error, n)
	for i := range n {
		errs[i] = make(chan error, 1)
		r := i + 1
		go func() { errs[i] <- g.wait(r) }()
		// In order: the batch is in arrival order.
		waitFor(t, func() bool { g.mu.Lock(); defer g.mu.Unlock(); return len(g.pending) == i+1 })
	}
	close(release)
	if err := <-lone; err != nil {
		t.Fatalf("lone request: %v", err)
	}
	for i := range n {
		r := i + 1
		err := <-errs[i]
		if want := r%2 == 1; (err != nil) != want || (err != nil && err.Error() != fmt.Sprintf("request %d failed", r)) {
			t.Fatalf("request %d answered %v", r, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(batches) != 2 || len(batches[0]) != 1 || len(batches[1]) != n {
		t.Fatalf("batches %v, want the lone request alone and then the %d that waited together", batches, n)
	}
	for i, r := range batches[1] {
		if r != i+1 {
			t.Fatalf("second batch %v not in arrival order", batches[1])
		}
	}
}

// After a batch the barrier goes idle, and a later request starts a new
// commit rather than waiting for one.
func TestBarrierRestartsAfterIdle(t *testing.T) {
	runs := 0
	boom := errors.New("boom")
	g := newBarrier(func(batch []struct{}) []error { runs++; return sameForAll(boom, len(batch)) })
	for i := range 3 {
		if err := g.wait(struct{}{}); !errors.Is(err, boom) {
			t.Fatalf("wait %d = %v", i, err)
		}
	}
	if runs != 3 {
		t.Fatalf("%d commits for 3 sequential requests", runs)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(time.Millisecond)
	}
}
