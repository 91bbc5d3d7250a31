package blobstore

import "sync"

// barrier is group commit for both on-disk layouts. Making data durable
// costs a device flush however little is flushed, so requests that arrive
// while a commit runs wait and share the next one: concurrent writers pay
// one flush per batch rather than one each. A lone request is not delayed:
// batches form only while a commit is already running.
//
// What a request is and what a commit does are the backend's: the pack
// store's requests are empty (its commit makes everything committed so far
// durable), the object store's are the files of one blob (its commit
// renames them into place between two syncfs). A commit answers each
// request of its batch, so one blob's failed rename fails only that blob.
type barrier[R any] struct {
	// commit runs one batch, in arrival order, and returns one error per
	// request.
	commit func(batch []R) []error

	mu      sync.Mutex
	pending []barrierWaiter[R]
	running bool
}

type barrierWaiter[R any] struct {
	req  R
	done chan error
}

func newBarrier[R any](commit func(batch []R) []error) *barrier[R] {
	return &barrier[R]{commit: commit}
}

// wait blocks until a commit that started after wait was called has run
// req, and returns its answer for req.
func (g *barrier[R]) wait(req R) error {
	w := barrierWaiter[R]{req: req, done: make(chan error, 1)}
	g.mu.Lock()
	g.pending = append(g.pending, w)
	if !g.running {
		g.running = true
		go g.loop()
	}
	g.mu.Unlock()
	return <-w.done
}

func (g *barrier[R]) loop() {
	for {
		g.mu.Lock()
		batch := g.pending
		g.pending = nil
		if len(batch) == 0 {
			g.running = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		reqs := make([]R, len(batch))
		for i, w := range batch {
			reqs[i] = w.req
		}
		errs := g.commit(reqs)
		for i, w := range batch {
			w.done <- errs[i]
		}
	}
}

// sameForAll is the answer of a commit whose outcome is one for the batch.
func sameForAll(err error, n int) []error {
	errs := make([]error, n)
	for i := range errs {
		errs[i] = err
	}
	return errs
}
