package dirstore

import (
	"context"
	"fmt"
	"iter"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/internal/touchlog"
)

// Memory keeps directories in a map; for tests and throwaway daemons.
type Memory struct {
	mu    sync.RWMutex
	dirs  map[castore.Digest]*castorev1.Directory
	touch *touchlog.Log
}

func NewMemory() *Memory {
	return &Memory{dirs: make(map[castore.Digest]*castorev1.Directory), touch: touchlog.New()}
}

func (m *Memory) Get(_ context.Context, d castore.Digest) (*castorev1.Directory, error) {
	var dir *castorev1.Directory
	var ok bool
	m.touch.Guard(func() {
		m.mu.RLock()
		dir, ok = m.dirs[d]
		m.mu.RUnlock()
		if ok {
			m.touch.Touch(d)
		}
	})
	if !ok {
		return nil, fmt.Errorf("get directory %s: %w", d, castore.ErrNotFound)
	}
	// Callers may modify what they get; the stored copy must stay intact.
	return proto.Clone(dir).(*castorev1.Directory), nil
}

func (m *Memory) GetRecursive(ctx context.Context, root castore.Digest) iter.Seq2[*castorev1.Directory, error] {
	return WalkClosure(ctx, root, m.Get)
}

func (m *Memory) Put(ctx context.Context, d *castorev1.Directory) (castore.Digest, error) {
	p := m.PutMultiple(ctx)
	if err := p.Put(d); err != nil {
		return castore.Digest{}, err
	}
	return p.Close()
}

func (m *Memory) PutMultiple(ctx context.Context) castore.DirectoryPutter {
	return &putter{v: castore.ClosureValidator{Lookup: func(dg castore.Digest) (*castorev1.Directory, error) { return m.Get(ctx, dg) }}, commit: func(dirs []*castorev1.Directory) error {
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, d := range dirs {
			dg := castore.DirectoryDigest(d)
			m.touch.Touch(dg)
			m.dirs[dg] = proto.Clone(d).(*castorev1.Directory)
		}
		return nil
	}}
}

func (m *Memory) Close() error { return nil }
