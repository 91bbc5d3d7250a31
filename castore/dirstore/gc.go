package dirstore

import (
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/tvix-go/tvix/castore"
)

var (
	_ castore.Collectable = (*Bolt)(nil)
	_ castore.Collectable = (*Memory)(nil)
)

// sweepBatch bounds one deleting transaction: lookups wait for it.
const sweepBatch = 4096

// Sweep deletes the directories req.Live does not name and nobody looked
// up or put since req.Since (castore.Collectable). Each batch is one
// transaction, deciding again under the sweep lock: a crash leaves a
// prefix deleted, and only dead directories are ever deleted.
func (b *Bolt) Sweep(ctx context.Context, req castore.SweepRequest) (castore.SweepReport, error) {
	var rep castore.SweepReport
	protected := func(d castore.Digest) bool { return b.touch.Since(d, req.Since) }
	var dead []castore.Digest
	err := b.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucket)).ForEach(func(k, _ []byte) error {
			switch d := castore.Digest(k); {
			case req.Live(d):
			case protected(d):
				rep.Kept++
			default:
				dead = append(dead, d)
			}
			return nil
		})
	})
	if err != nil {
		return rep, fmt.Errorf("sweep directories: %w", err)
	}
	if req.DryRun {
		rep.Directories = int64(len(dead))
		return rep, nil
	}
	for len(dead) > 0 {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		n := min(len(dead), sweepBatch)
		var deleted, kept int64
		err := b.touch.Exclusive(func() error {
			return b.db.Update(func(tx *bolt.Tx) error {
				deleted, kept = 0, 0
				bk := tx.Bucket([]byte(bucket))
				for _, d := range dead[:n] {
					if protected(d) {
						kept++
						continue
					}
					if err := bk.Delete(d[:]); err != nil {
						return err
					}
					deleted++
				}
				return nil
			})
		})
		if err != nil {
			return rep, fmt.Errorf("sweep directories: %w", err)
		}
		rep.Directories += deleted
		rep.Kept += kept
		dead = dead[n:]
		if req.Progress != nil {
			req.Progress(castore.SweepProgress{Phase: "sweep", Objects: rep.Directories})
		}
	}
	return rep, nil
}

func (m *Memory) Sweep(_ context.Context, req castore.SweepRequest) (castore.SweepReport, error) {
	var rep castore.SweepReport
	err := m.touch.Exclusive(func() error {
		m.mu.Lock()
		defer m.mu.Unlock()
		for d := range m.dirs {
			if req.Live(d) {
				continue
			}
			if m.touch.Since(d, req.Since) {
				rep.Kept++
				continue
			}
			rep.Directories++
			if !req.DryRun {
				delete(m.dirs, d)
			}
		}
		return nil
	})
	return rep, err
}
