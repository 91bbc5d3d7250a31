package pathinfo

import (
	"bytes"
	"context"
	"fmt"
	"iter"
	"slices"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/tvix-go/tvix/internal/boltdb"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/storev1"
)

const bucket = "pathinfo"

// Bolt keeps PathInfos in a bbolt file (the embedded default), keyed by the
// 20-byte store path digest.
type Bolt struct{ db *boltdb.DB }

func NewBolt(path string) (*Bolt, error) {
	db, err := boltdb.Open(path, bucket)
	if err != nil {
		return nil, fmt.Errorf("path info service: %w", err)
	}
	return &Bolt{db: db}, nil
}

func (b *Bolt) Get(_ context.Context, digest [storepath.DigestSize]byte) (*storev1.PathInfo, error) {
	var info *storev1.PathInfo
	err := b.db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket([]byte(bucket)).Get(digest[:])
		if raw == nil {
			return fmt.Errorf("get path info %x: %w", digest, ErrNotFound)
		}
		info = &storev1.PathInfo{}
		return proto.Unmarshal(raw, info)
	})
	return info, err
}

func (b *Bolt) Put(_ context.Context, info *storev1.PathInfo) (*storev1.PathInfo, error) {
	sp, err := Validate(info)
	if err != nil {
		return nil, fmt.Errorf("put path info: %w", err)
	}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(info)
	if err != nil {
		return nil, fmt.Errorf("put path info %s: %w", sp, err)
	}
	if err := b.db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte(bucket)).Put(sp.Digest[:], raw) }); err != nil {
		return nil, fmt.Errorf("put path info %s: %w", sp, err)
	}
	return info, nil
}

func (b *Bolt) List(context.Context) iter.Seq2[*storev1.PathInfo, error] {
	return func(yield func(*storev1.PathInfo, error) bool) {
		// Read in pages so a slow consumer does not hold a transaction open.
		var after []byte
		for {
			var page []*storev1.PathInfo
			err := b.db.View(func(tx *bolt.Tx) error {
				c := tx.Bucket([]byte(bucket)).Cursor()
				k, v := c.First()
				if after != nil {
					k, v = c.Seek(after)
					if k != nil && string(k) == string(after) {
						k, v = c.Next()
					}
				}
				for ; k != nil && len(page) < 256; k, v = c.Next() {
					info := &storev1.PathInfo{}
					if err := proto.Unmarshal(v, info); err != nil {
						return fmt.Errorf("list path infos: entry %x: %w", k, err)
					}
					page = append(page, info)
					after = append(after[:0], k...)
				}
				return nil
			})
			if err != nil {
				yield(nil, err)
				return
			}
			for _, info := range page {
				if !yield(info, nil) {
					return
				}
			}
			if len(page) < 256 {
				return
			}
		}
	}
}

func (b *Bolt) Close() error { return b.db.Close() }

// PutBatch stores many PathInfos in one transaction (one sync instead of
// one per path): all or none of them.
func (b *Bolt) PutBatch(_ context.Context, infos []*storev1.PathInfo) error {
	type kv struct{ k, v []byte }
	rows := make([]kv, len(infos))
	for i, info := range infos {
		sp, err := Validate(info)
		if err != nil {
			return fmt.Errorf("put path info: %w", err)
		}
		raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(info)
		if err != nil {
			return fmt.Errorf("put path info %s: %w", sp, err)
		}
		rows[i] = kv{append([]byte(nil), sp.Digest[:]...), raw}
	}
	// In key order: bbolt splits nodes only at commit, so random-order puts
	// of many keys shift an ever larger node on every insert.
	slices.SortFunc(rows, func(a, b kv) int { return bytes.Compare(a.k, b.k) })
	err := b.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte(bucket))
		for _, r := range rows {
			if err := bk.Put(r.k, r.v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("put %d path infos: %w", len(infos), err)
	}
	return nil
}
