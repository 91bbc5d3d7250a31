package blobstore

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// groupCommit makes staged files durable and visible in batches: one
// syncfs flushes the data of every blob waiting, then their renames run,
// then a second syncfs makes the renames durable before any writer's Close
// returns. Per-file fsyncs cost a device flush each; with many small files
// in flight a batch shares two flushes among all of them. A lone writer
// is not delayed: batches form only while a flush is already running.
type groupCommit struct {
	root      string
	ensureDir func(string) error

	mu      sync.Mutex
	pending []*commitReq
	running bool
}

type commitReq struct {
	files []staged
	done  chan error
}

func newGroupCommit(root string, ensureDir func(string) error) *groupCommit {
	return &groupCommit{root: root, ensureDir: ensureDir}
}

// commit blocks until files are durable under their final names.
func (g *groupCommit) commit(files []staged) error {
	req := &commitReq{files: files, done: make(chan error, 1)}
	g.mu.Lock()
	g.pending = append(g.pending, req)
	if !g.running {
		g.running = true
		go g.loop()
	}
	g.mu.Unlock()
	return <-req.done
}

func (g *groupCommit) loop() {
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
		g.run(batch)
	}
}

func (g *groupCommit) syncfs() error {
	f, err := os.Open(g.root)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("syncfs %s: %w", g.root, err)
	}
	return nil
}

func (g *groupCommit) run(batch []*commitReq) {
	if err := g.syncfs(); err != nil {
		for _, r := range batch {
			r.done <- err
		}
		return
	}
	var renamed []*commitReq
	for _, r := range batch {
		var err error
		for i, f := range r.files {
			if err = g.ensureDir(filepath.Dir(f.final)); err == nil {
				err = os.Rename(f.tmp, f.final)
			}
			if err != nil {
				// Already renamed files of this blob are complete chunks
				// (named by content); only its manifest is what matters.
				for _, rest := range r.files[i:] {
					os.Remove(rest.tmp)
				}
				break
			}
		}
		if err != nil {
			r.done <- err
			continue
		}
		renamed = append(renamed, r)
	}
	err := g.syncfs()
	for _, r := range renamed {
		r.done <- err
	}
}
