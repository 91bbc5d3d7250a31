package blobstore

import (
	"bytes"
	"fmt"
	"sync"

	"github.com/tvix-go/tvix/castore"
)

// NewMemory returns a chunking BlobService that keeps everything in memory.
func NewMemory() *Store {
	return newStore(&memBackend{chunks: map[castore.Digest][]byte{}, manifests: map[castore.Digest][]castore.ChunkMeta{}})
}

type memBackend struct {
	mu        sync.RWMutex
	chunks    map[castore.Digest][]byte
	manifests map[castore.Digest][]castore.ChunkMeta
	slabs     slabs
}

func (m *memBackend) hasChunk(d castore.Digest) (bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	_, ok := m.chunks[d]
	return ok, nil
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

func (m *memBackend) openChunk(d castore.Digest) (chunkReader, int64, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	c, ok := m.chunks[d]
	if !ok {
		return nil, 0, fmt.Errorf("chunk %s: %w", d, castore.ErrNotFound)
	}
	return nopCloser{bytes.NewReader(c)}, int64(len(c)), nil
}

func (m *memBackend) manifest(d castore.Digest) ([]castore.ChunkMeta, bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	c, ok := m.manifests[d]
	return c, ok, nil
}

func (m *memBackend) newTxn() (txn, error) {
	return &memTxn{m: m, staged: map[castore.Digest][]byte{}}, nil
}

func (m *memBackend) close() error { return nil }

type memTxn struct {
	m      *memBackend
	staged map[castore.Digest][]byte
}

func (t *memTxn) stageChunk(d castore.Digest, data []byte) error {
	if ok, _ := t.m.hasChunk(d); ok {
		return nil
	}
	if _, ok := t.staged[d]; !ok {
		t.staged[d] = t.m.slabs.copy(data)
	}
	return nil
}

func (t *memTxn) commit(blob castore.Digest, manifest []castore.ChunkMeta, _ bool) error {
	t.m.mu.Lock()
	defer t.m.mu.Unlock()
	for d, c := range t.staged {
		if _, ok := t.m.chunks[d]; !ok {
			t.m.chunks[d] = c
		}
	}
	if manifest != nil {
		t.m.manifests[blob] = append([]castore.ChunkMeta(nil), manifest...)
	}
	t.staged = nil
	return nil
}

func (t *memTxn) abort() {
	for _, c := range t.staged {
		t.m.slabs.giveBack(c)
	}
	t.staged = nil
}
