package dirstore

import (
	"bytes"
	"context"
	"fmt"
	"iter"
	"slices"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/internal/boltdb"
	"github.com/tvix-go/tvix/internal/touchlog"
)

const bucket = "directories"

// Bolt keeps directories in a bbolt file, keyed by digest, each stored as
// its canonical encoding. A closure is written in one transaction, so it
// is visible whole or not at all.
type Bolt struct {
	db *boltdb.DB
	// touch remembers directories looked up or put: an upload's closure
	// refers to them before a PathInfo does (see castore.Collectable).
	touch *touchlog.Log
}

func NewBolt(path string) (*Bolt, error) {
	db, err := boltdb.Open(path, bucket)
	if err != nil {
		return nil, fmt.Errorf("directory service: %w", err)
	}
	return &Bolt{db: db, touch: touchlog.New()}, nil
}

func (b *Bolt) Get(_ context.Context, d castore.Digest) (dir *castorev1.Directory, err error) {
	b.touch.Guard(func() {
		if dir, err = b.get(d); err == nil {
			b.touch.Touch(d)
		}
	})
	return dir, err
}

func (b *Bolt) get(d castore.Digest) (*castorev1.Directory, error) {
	var dir *castorev1.Directory
	err := b.db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket([]byte(bucket)).Get(d[:])
		if raw == nil {
			return fmt.Errorf("get directory %s: %w", d, castore.ErrNotFound)
		}
		dir = &castorev1.Directory{}
		if err := proto.Unmarshal(raw, dir); err != nil {
			return fmt.Errorf("get directory %s: decode: %w", d, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Disk can rot; a directory that no longer hashes to its key is not it.
	if got := castore.DirectoryDigest(dir); got != d {
		return nil, fmt.Errorf("get directory %s: stored data hashes to %s", d, got)
	}
	return dir, nil
}

func (b *Bolt) GetRecursive(ctx context.Context, root castore.Digest) iter.Seq2[*castorev1.Directory, error] {
	return WalkClosure(ctx, root, b.Get)
}

func (b *Bolt) Put(ctx context.Context, d *castorev1.Directory) (castore.Digest, error) {
	p := b.PutMultiple(ctx)
	if err := p.Put(d); err != nil {
		return castore.Digest{}, err
	}
	return p.Close()
}

func (b *Bolt) PutMultiple(ctx context.Context) castore.DirectoryPutter {
	return &putter{v: castore.ClosureValidator{Lookup: func(dg castore.Digest) (*castorev1.Directory, error) { return b.Get(ctx, dg) }}, commit: func(dirs []*castorev1.Directory) error {
		type row struct {
			dg  castore.Digest
			raw []byte
		}
		rows := make([]row, len(dirs))
		for i, d := range dirs {
			raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(d)
			if err != nil {
				return err
			}
			rows[i] = row{castore.DirectoryDigest(d), raw}
		}
		// In key order: bbolt splits nodes only at commit, so random-order
		// puts of many keys shift an ever larger node on every insert.
		slices.SortFunc(rows, func(a, b row) int { return bytes.Compare(a.dg[:], b.dg[:]) })
		for _, r := range rows {
			b.touch.Touch(r.dg)
		}
		return b.db.Update(func(tx *bolt.Tx) error {
			bk := tx.Bucket([]byte(bucket))
			for _, r := range rows {
				if err := bk.Put(r.dg[:], r.raw); err != nil {
					return err
				}
			}
			return nil
		})
	}}
}

func (b *Bolt) Close() error { return b.db.Close() }
