package pathinfo

import (
	"context"
	"encoding/binary"
	"fmt"
	"maps"

	bolt "go.etcd.io/bbolt"

	"github.com/tvix-go/tvix/nix/storepath"
)

// AccessRecorder is implemented by services that keep when each path was
// last used (unix seconds), for evicting the least recently used.
type AccessRecorder interface {
	RecordAccess(ctx context.Context, times map[[storepath.DigestSize]byte]int64) error
	AccessTimes(ctx context.Context) (map[[storepath.DigestSize]byte]int64, error)
}

const accessBucket = "access"

// RecordAccess writes a batch in one transaction; a time only moves
// forward.
func (b *Bolt) RecordAccess(_ context.Context, times map[[storepath.DigestSize]byte]int64) error {
	err := b.db.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists([]byte(accessBucket))
		if err != nil {
			return err
		}
		for d, t := range times {
			if old := bk.Get(d[:]); len(old) == 8 && int64(binary.BigEndian.Uint64(old)) >= t {
				continue
			}
			if err := bk.Put(d[:], binary.BigEndian.AppendUint64(nil, uint64(t))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record access times: %w", err)
	}
	return nil
}

func (b *Bolt) AccessTimes(context.Context) (map[[storepath.DigestSize]byte]int64, error) {
	out := map[[storepath.DigestSize]byte]int64{}
	err := b.db.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte(accessBucket))
		if bk == nil {
			return nil
		}
		return bk.ForEach(func(k, v []byte) error {
			if len(k) == storepath.DigestSize && len(v) == 8 {
				out[[storepath.DigestSize]byte(k)] = int64(binary.BigEndian.Uint64(v))
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read access times: %w", err)
	}
	return out, nil
}

func (m *Memory) RecordAccess(_ context.Context, times map[[storepath.DigestSize]byte]int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.access == nil {
		m.access = map[[storepath.DigestSize]byte]int64{}
	}
	for d, t := range times {
		m.access[d] = max(m.access[d], t)
	}
	return nil
}

func (m *Memory) AccessTimes(context.Context) (map[[storepath.DigestSize]byte]int64, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return maps.Clone(m.access), nil
}
