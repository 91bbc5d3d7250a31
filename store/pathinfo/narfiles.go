package pathinfo

import (
	"context"
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/tvix-go/tvix/nix/storepath"
)

// NARFiles remembers, for nar-bridge, which store path the NAR file
// uploaded under a URL ("nar/<file hash>.nar.xz") became. Nix keeps the
// narinfos it uploaded in its own cache, URL and all, and later downloads
// from that URL: the bridge must answer it, across restarts, though it
// kept only the castore tree and not the file.
type NARFiles interface {
	PutNARFile(ctx context.Context, url string, path [storepath.DigestSize]byte) error
	// GetNARFile returns ErrNotFound (wrapped) for an unknown URL.
	GetNARFile(ctx context.Context, url string) ([storepath.DigestSize]byte, error)
}

const narFilesBucket = "narfiles"

func (b *Bolt) PutNARFile(_ context.Context, url string, path [storepath.DigestSize]byte) error {
	err := b.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(narFilesBucket)).Put([]byte(url), path[:])
	})
	if err != nil {
		return fmt.Errorf("record NAR file %s: %w", url, err)
	}
	return nil
}

func (b *Bolt) GetNARFile(_ context.Context, url string) ([storepath.DigestSize]byte, error) {
	var d [storepath.DigestSize]byte
	found := false
	err := b.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket([]byte(narFilesBucket)).Get([]byte(url)); len(v) == len(d) {
			copy(d[:], v)
			found = true
		}
		return nil
	})
	if err != nil {
		return d, fmt.Errorf("look up NAR file %s: %w", url, err)
	}
	if !found {
		return d, fmt.Errorf("NAR file %s: %w", url, ErrNotFound)
	}
	return d, nil
}

// memoryNARFiles is the Memory service's record.
type memoryNARFiles struct {
	mu    sync.Mutex
	paths map[string][storepath.DigestSize]byte
}

func (m *Memory) PutNARFile(_ context.Context, url string, path [storepath.DigestSize]byte) error {
	m.files.mu.Lock()
	defer m.files.mu.Unlock()
	if m.files.paths == nil {
		m.files.paths = map[string][storepath.DigestSize]byte{}
	}
	m.files.paths[url] = path
	return nil
}

func (m *Memory) GetNARFile(_ context.Context, url string) ([storepath.DigestSize]byte, error) {
	m.files.mu.Lock()
	defer m.files.mu.Unlock()
	d, ok := m.files.paths[url]
	if !ok {
		return d, fmt.Errorf("NAR file %s: %w", url, ErrNotFound)
	}
	return d, nil
}
