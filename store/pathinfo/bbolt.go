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

// referrersBucket indexes references backwards: a key is a reference's
// digest followed by the digest of a path that refers to it (no value),
// so a path's referrers are one prefix scan, not a read of every path.
const referrersBucket = "referrers"

func NewBolt(path string) (*Bolt, error) {
	db, err := boltdb.Open(path, bucket, narFilesBucket)
	if err != nil {
		return nil, fmt.Errorf("path info service: %w", err)
	}
	if err := db.Update(buildReferrers); err != nil {
		db.Close()
		return nil, fmt.Errorf("path info service: index referrers: %w", err)
	}
	return &Bolt{db: db}, nil
}

// buildReferrers makes the referrers index of a file written before it
// existed, once.
func buildReferrers(tx *bolt.Tx) error {
	if tx.Bucket([]byte(referrersBucket)) != nil {
		return nil
	}
	ix, err := tx.CreateBucket([]byte(referrersBucket))
	if err != nil {
		return err
	}
	return tx.Bucket([]byte(bucket)).ForEach(func(k, v []byte) error {
		info := &storev1.PathInfo{}
		if err := proto.Unmarshal(v, info); err != nil {
			return fmt.Errorf("entry %x: %w", k, err)
		}
		return indexReferences(ix, k, info)
	})
}

// indexReferences records in the referrers index that key refers to
// each of info's references.
func indexReferences(ix *bolt.Bucket, key []byte, info *storev1.PathInfo) error {
	for _, r := range info.GetReferences() {
		if err := ix.Put(append(append(make([]byte, 0, len(r)+len(key)), r...), key...), []byte{}); err != nil {
			return err
		}
	}
	return nil
}

// unindexReferences undoes indexReferences for a path being deleted.
func unindexReferences(ix *bolt.Bucket, key []byte, info *storev1.PathInfo) error {
	for _, r := range info.GetReferences() {
		if err := ix.Delete(append(append(make([]byte, 0, len(r)+len(key)), r...), key...)); err != nil {
			return err
		}
	}
	return nil
}

// referrerKeys are the digests of the paths that refer to digest, from
// the index, in tx.
func referrerKeys(tx *bolt.Tx, digest []byte) [][]byte {
	var out [][]byte
	c := tx.Bucket([]byte(referrersBucket)).Cursor()
	for k, _ := c.Seek(digest); k != nil && bytes.HasPrefix(k, digest); k, _ = c.Next() {
		out = append(out, bytes.Clone(k[len(digest):]))
	}
	return out
}

// indexedInfo reads the path info the referrers index names by key.
func indexedInfo(bk *bolt.Bucket, key []byte) (*storev1.PathInfo, error) {
	raw := bk.Get(key)
	if raw == nil {
		return nil, fmt.Errorf("the referrers index names %x, which is not recorded", key)
	}
	info := &storev1.PathInfo{}
	if err := proto.Unmarshal(raw, info); err != nil {
		return nil, fmt.Errorf("entry %x: %w", key, err)
	}
	return info, nil
}

// Referrers returns the path infos that refer to digest (an index
// lookup), itself included when it refers to itself.
func (b *Bolt) Referrers(_ context.Context, digest [storepath.DigestSize]byte) ([]*storev1.PathInfo, error) {
	var infos []*storev1.PathInfo
	err := b.db.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte(bucket))
		for _, k := range referrerKeys(tx, digest[:]) {
			info, err := indexedInfo(bk, k)
			if err != nil {
				return err
			}
			infos = append(infos, info)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("query referrers of %x: %w", digest, err)
	}
	return infos, nil
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
	var stored *storev1.PathInfo
	err = b.db.Update(func(tx *bolt.Tx) error {
		var err error
		stored, err = putMerged(tx, sp.Digest[:], info)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("put path info %s: %w", sp, err)
	}
	return stored, nil
}

// putMerged stores info under key, merged (see Merge) with what is there;
// in the caller's transaction, so no other Put comes between the look and
// the write.
func putMerged(tx *bolt.Tx, key []byte, info *storev1.PathInfo) (*storev1.PathInfo, error) {
	bk := tx.Bucket([]byte(bucket))
	if raw := bk.Get(key); raw != nil {
		old := &storev1.PathInfo{}
		if err := proto.Unmarshal(raw, old); err != nil {
			return nil, fmt.Errorf("decode the recorded path info: %w", err)
		}
		merged, err := Merge(old, info)
		if err != nil {
			return nil, err
		}
		if proto.Equal(merged, old) {
			return old, nil
		}
		info = merged
	}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(info)
	if err != nil {
		return nil, err
	}
	if err := indexReferences(tx.Bucket([]byte(referrersBucket)), key, info); err != nil {
		return nil, err
	}
	return info, bk.Put(key, raw)
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
	type kv struct {
		k    []byte
		info *storev1.PathInfo
	}
	rows := make([]kv, len(infos))
	for i, info := range infos {
		sp, err := Validate(info)
		if err != nil {
			return fmt.Errorf("put path info: %w", err)
		}
		rows[i] = kv{append([]byte(nil), sp.Digest[:]...), info}
	}
	// In key order: bbolt splits nodes only at commit, so random-order puts
	// of many keys shift an ever larger node on every insert.
	// Stable, so two infos of one path merge in the order given.
	slices.SortStableFunc(rows, func(a, b kv) int { return bytes.Compare(a.k, b.k) })
	err := b.db.Update(func(tx *bolt.Tx) error {
		for _, r := range rows {
			if _, err := putMerged(tx, r.k, r.info); err != nil {
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
