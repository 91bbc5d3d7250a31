package blobstore

import "sync"

// barrier runs flush for whoever waits, one run at a time; callers that
// arrive while a run is going share the next one, so concurrent writers
// pay one flush per batch rather than one each.
type barrier struct {
	flush func() error

	mu      sync.Mutex
	waiters []chan error
	running bool
}

func (g *barrier) wait() error {
	ch := make(chan error, 1)
	g.mu.Lock()
	g.waiters = append(g.waiters, ch)
	if !g.running {
		g.running = true
		go g.loop()
	}
	g.mu.Unlock()
	return <-ch
}

func (g *barrier) loop() {
	for {
		g.mu.Lock()
		batch := g.waiters
		g.waiters = nil
		if len(batch) == 0 {
			g.running = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		err := g.flush()
		for _, ch := range batch {
			ch <- err
		}
	}
}
