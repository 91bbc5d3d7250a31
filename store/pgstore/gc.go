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
// whose path is not recorded yet keeps its whole tree. The candidates go
// into a temporary table as the directories stream past (this process
// holds no more than a batch, however many directories there are), the
// database itself takes out what a spared directory reaches, and the rest
// goes in batches. Each batch is one transaction whose delete checks the
// time again, so a put committed meanwhile wins; a crash leaves a prefix
// of the batches done and the temporary table gone with its session.
func (s *Directories) Sweep(ctx context.Context, req castore.SweepRequest) (castore.SweepReport, error) {
	var rep castore.SweepReport
	if s.db.pool.Config().MaxConns < 2 {
		// The listing streams on one connection into COPY on another.
		return rep, fmt.Errorf("sweep directories: needs two connections to the database (pool_max_conns is %d)", s.db.pool.Config().MaxConns)
	}
	err := s.db.retry(ctx, "sweep directories", func(ctx context.Context) error {
		rep.Kept = 0
		return s.sweep(ctx, req, &rep)
	})
	if err != nil {
		return rep, fmt.Errorf("sweep directories: %w", err)
	}
	return rep, nil
}

func (s *Directories) sweep(ctx context.Context, req castore.SweepRequest, rep *castore.SweepReport) error {
	conn, err := s.db.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS sweep_candidates (digest bytea PRIMARY KEY); TRUNCATE sweep_candidates`); err != nil {
		return fmt.Errorf("candidate table: %w", err)
	}
	// The connection goes back to the pool: leave it as it came.
	defer conn.Exec(context.WithoutCancel(ctx), `DROP TABLE IF EXISTS sweep_candidates`)

	rows, err := s.db.pool.Query(ctx, `SELECT digest, touched FROM directories`)
	if err != nil {
		return fmt.Errorf("list directories: %w", err)
	}
	src := &candidates{rows: rows, req: req}
	_, err = conn.CopyFrom(ctx, pgx.Identifier{"sweep_candidates"}, []string{"digest"}, src)
	rows.Close()
	if err == nil {
		err = src.err
	}
	if err != nil {
		return fmt.Errorf("list directories: %w", err)
	}
	rep.Kept = src.spared
	// Below a spared directory: its children, and theirs through every
	// candidate (a child that is no candidate is live, and the marker
	// reached what is below it, or spared, and is a start itself).
	tag, err := conn.Exec(ctx, `
		WITH RECURSIVE reached(digest) AS (
			SELECT unnest(children) FROM directories WHERE touched >= $1
			UNION
			SELECT unnest(d.children) FROM reached r
				JOIN sweep_candidates c ON c.digest = r.digest
				JOIN directories d ON d.digest = r.digest
		)
		DELETE FROM sweep_candidates WHERE digest IN (SELECT digest FROM reached)`, req.Since)
	if err != nil {
		return fmt.Errorf("spare what recent directories reach: %w", err)
	}
	rep.Kept += tag.RowsAffected()
	if req.DryRun {
		return conn.QueryRow(ctx, `SELECT count(*) FROM sweep_candidates`).Scan(&rep.Directories)
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var batch [][]byte
		rows, err := conn.Query(ctx, `SELECT digest FROM sweep_candidates LIMIT $1`, sweepBatch)
		if err == nil {
			batch, err = pgx.CollectRows(rows, pgx.RowTo[[]byte])
		}
		if err != nil {
			return fmt.Errorf("next batch: %w", err)
		}
		if len(batch) == 0 {
			return nil
		}
		var deleted int64
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, `DELETE FROM directories WHERE digest = ANY($1) AND touched < $2`, batch, req.Since)
			if err != nil {
				return err
			}
			deleted = tag.RowsAffected()
			_, err = tx.Exec(ctx, `DELETE FROM sweep_candidates WHERE digest = ANY($1)`, batch)
			return err
		})
		if err != nil {
			return fmt.Errorf("delete a batch: %w", err)
		}
		rep.Directories += deleted
		rep.Kept += int64(len(batch)) - deleted
		if req.Progress != nil {
			req.Progress(castore.SweepProgress{Phase: "sweep", Objects: rep.Directories})
		}
	}
}

// candidates feeds COPY with the digests of directories neither live nor
// touched since the epoch, straight from the listing's rows, counting the
// spared ones.
type candidates struct {
	rows   pgx.Rows
	req    castore.SweepRequest
	digest []byte
	spared int64
	err    error
}

func (c *candidates) Next() bool {
	for c.err == nil && c.rows.Next() {
		var touched time.Time
		if c.err = c.rows.Scan(&c.digest, &touched); c.err != nil {
			return false
		}
		d, err := castore.DigestFromBytes(c.digest)
		if err != nil {
			c.err = fmt.Errorf("directory row %x: %w", c.digest, err)
			return false
		}
		switch {
		case c.req.Live(d):
		case !touched.Before(c.req.Since):
			c.spared++
		default:
			return true
		}
	}
	if c.err == nil {
		c.err = c.rows.Err()
	}
	return false
}

func (c *candidates) Values() ([]any, error) { return []any{c.digest}, nil }
func (c *candidates) Err() error             { return c.err }

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
