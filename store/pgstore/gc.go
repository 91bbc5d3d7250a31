package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/pathinfo"
)

var (
	_ castore.Collectable = (*Directories)(nil)
	_ pathinfo.Deleter    = (*PathInfos)(nil)
)

// sweepBatch is how many directories one delete transaction takes.
const sweepBatch = 1000

// Sweep deletes the directories req.Live does not name and that were not
// put or deduplicated against since req.Since (castore.Collectable), with
// everything below one it spares: a directory uploaded by another daemon
// whose path is not recorded yet keeps its whole tree. Each batch is one
// transaction whose delete checks the time again, so a put committed
// meanwhile wins; a crash leaves a prefix of the batches done.
func (s *Directories) Sweep(ctx context.Context, req castore.SweepRequest) (castore.SweepReport, error) {
	var rep castore.SweepReport
	type row struct {
		children [][]byte
		dead     bool
	}
	all := map[castore.Digest]*row{}
	var spared []castore.Digest
	err := s.db.retry(ctx, "list directories", func(ctx context.Context) error {
		clear(all)
		spared = spared[:0]
		rows, err := s.db.pool.Query(ctx, `SELECT digest, children, touched FROM directories`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				key      []byte
				children [][]byte
				touched  time.Time
			)
			if err := rows.Scan(&key, &children, &touched); err != nil {
				return err
			}
			d, err := castore.DigestFromBytes(key)
			if err != nil {
				return fmt.Errorf("directory row %x: %w", key, err)
			}
			r := &row{children: children}
			switch {
			case req.Live(d):
			case !touched.Before(req.Since):
				spared = append(spared, d)
			default:
				r.dead = true
			}
			all[d] = r
		}
		return rows.Err()
	})
	if err != nil {
		return rep, fmt.Errorf("sweep directories: %w", err)
	}
	rep.Kept = int64(len(spared))
	for len(spared) > 0 {
		d := spared[len(spared)-1]
		spared = spared[:len(spared)-1]
		for _, c := range all[d].children {
			cd, err := castore.DigestFromBytes(c)
			if err != nil {
				continue
			}
			if r := all[cd]; r != nil && r.dead {
				r.dead = false
				rep.Kept++
				spared = append(spared, cd)
			}
		}
	}
	var dead [][]byte
	for d, r := range all {
		if r.dead {
			dead = append(dead, d.Bytes())
		}
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
		var deleted int64
		err := s.db.tx(ctx, "sweep directories", func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, `DELETE FROM directories WHERE digest = ANY($1) AND touched < $2`, dead[:n], req.Since)
			deleted = tag.RowsAffected()
			return err
		})
		if err != nil {
			return rep, fmt.Errorf("sweep directories: %w", err)
		}
		rep.Directories += deleted
		rep.Kept += int64(n) - deleted
		dead = dead[n:]
		if req.Progress != nil {
			req.Progress(castore.SweepProgress{Phase: "sweep", Objects: rep.Directories})
		}
	}
	return rep, nil
}

// Delete removes paths, sparing every one a remaining path refers to
// (pathinfo.Deleter), in one transaction. The rows to delete are locked
// first (FOR UPDATE), which a concurrent Put's check of its references
// (FOR KEY SHARE) waits for: a path put meanwhile either committed before
// the lock, and then spares what it refers to, or finds its reference gone
// and fails, so no recorded path ever lacks a reference.
func (s *PathInfos) Delete(ctx context.Context, paths [][storepath.DigestSize]byte) ([][storepath.DigestSize]byte, error) {
	keys := make([][]byte, len(paths))
	for i := range paths {
		keys[i] = paths[i][:]
	}
	var gone [][storepath.DigestSize]byte
	err := s.db.tx(ctx, "delete path infos", func(tx pgx.Tx) error {
		gone = gone[:0]
		rows, err := tx.Query(ctx, `SELECT digest, refs FROM path_infos WHERE digest = ANY($1) FOR UPDATE`, keys)
		if err != nil {
			return err
		}
		refs := map[[storepath.DigestSize]byte][][]byte{}
		candidates := map[[storepath.DigestSize]byte]bool{}
		if err := readRefs(rows, refs, func(d [storepath.DigestSize]byte) { candidates[d] = true }); err != nil {
			return err
		}
		// Paths staying that refer into the candidates spare what they
		// refer to (and, through spared candidates, what those refer to).
		var locked [][]byte
		for d := range candidates {
			locked = append(locked, d[:])
		}
		rows, err = tx.Query(ctx, `SELECT digest, refs FROM path_infos WHERE refs && $1 AND NOT digest = ANY($1)`, locked)
		if err != nil {
			return err
		}
		if err := readRefs(rows, refs, nil); err != nil {
			return err
		}
		pathinfo.SpareReferenced(candidates, refs)
		var del [][]byte
		for d := range candidates {
			gone = append(gone, d)
			del = append(del, d[:])
		}
		if len(del) == 0 {
			return nil
		}
		if _, err := tx.Exec(ctx, `DELETE FROM nar_files WHERE path = ANY($1)`, del); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM path_infos WHERE digest = ANY($1)`, del)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("delete %d path infos: %w", len(paths), err)
	}
	return gone, nil
}

// readRefs reads (digest, refs) rows into refs, telling each (if set) of
// every path read.
func readRefs(rows pgx.Rows, refs map[[storepath.DigestSize]byte][][]byte, each func([storepath.DigestSize]byte)) error {
	defer rows.Close()
	for rows.Next() {
		var (
			key []byte
			r   [][]byte
		)
		if err := rows.Scan(&key, &r); err != nil {
			return err
		}
		if len(key) != storepath.DigestSize {
			return fmt.Errorf("path info row with a %d-byte digest", len(key))
		}
		d := [storepath.DigestSize]byte(key)
		refs[d] = r
		if each != nil {
			each(d)
		}
	}
	return rows.Err()
}
