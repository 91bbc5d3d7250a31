package pgstore

import (
	"context"
	"errors"
	"fmt"
	"iter"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/castore/dirstore"
)

// Directories is the DirectoryService on a DB.
type Directories struct{ handle }

var _ castore.DirectoryService = (*Directories)(nil)

// NewDirectories serves directories from db, which the caller closes.
func NewDirectories(db *DB) *Directories { return &Directories{handle{db: db}} }

// OpenDirectories opens a DB for a directory service of its own.
func OpenDirectories(ctx context.Context, raw string) (*Directories, error) {
	db, err := Open(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("directory service: %w", err)
	}
	return &Directories{handle{db: db, closeDB: true}}, nil
}

func (s *Directories) Get(ctx context.Context, d castore.Digest) (*castorev1.Directory, error) {
	var raw []byte
	err := s.db.retry(ctx, "get directory", func(ctx context.Context) error {
		return s.db.pool.QueryRow(ctx, `SELECT data FROM directories WHERE digest = $1`, d[:]).Scan(&raw)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("get directory %s: %w", d, castore.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get directory %s: %w", d, err)
	}
	return decodeDirectory(d, raw)
}

// decodeDirectory checks that what the database handed back is the
// directory asked for: a row that no longer hashes to its key is not it.
func decodeDirectory(d castore.Digest, raw []byte) (*castorev1.Directory, error) {
	dir := &castorev1.Directory{}
	if err := proto.Unmarshal(raw, dir); err != nil {
		return nil, fmt.Errorf("get directory %s: decode: %w", d, err)
	}
	if got := castore.DirectoryDigest(dir); got != d {
		return nil, fmt.Errorf("get directory %s: stored data hashes to %s", d, got)
	}
	return dir, nil
}

// closureQuery fetches a closure in one query: every directory reachable
// from the root. A child the table lacks comes back with NULL data.
const closureQuery = `
WITH RECURSIVE walk(digest) AS (
	SELECT $1::bytea
	UNION
	SELECT c FROM walk w JOIN directories d ON d.digest = w.digest, unnest(d.children) AS c
)
SELECT w.digest, d.data FROM walk w LEFT JOIN directories d ON d.digest = w.digest`

// GetRecursive fetches the closure in one query, then yields it in Tvix's
// order (root first, then breadth-first in entry order), which SQL cannot
// produce: the closure is held in memory meanwhile, its encoded size.
func (s *Directories) GetRecursive(ctx context.Context, root castore.Digest) iter.Seq2[*castorev1.Directory, error] {
	return func(yield func(*castorev1.Directory, error) bool) {
		var fetched map[castore.Digest][]byte
		err := s.db.retry(ctx, "get closure", func(ctx context.Context) error {
			rows, err := s.db.pool.Query(ctx, closureQuery, root[:])
			if err != nil {
				return err
			}
			defer rows.Close()
			fetched = map[castore.Digest][]byte{}
			for rows.Next() {
				var dg, raw []byte
				if err := rows.Scan(&dg, &raw); err != nil {
					return err
				}
				d, err := castore.DigestFromBytes(dg)
				if err != nil {
					return err
				}
				fetched[d] = raw
			}
			return rows.Err()
		})
		if err != nil {
			yield(nil, fmt.Errorf("closure of %s: %w", root, err))
			return
		}
		get := func(_ context.Context, d castore.Digest) (*castorev1.Directory, error) {
			raw := fetched[d]
			if raw == nil {
				return nil, fmt.Errorf("get directory %s: %w", d, castore.ErrNotFound)
			}
			delete(fetched, d) // each is yielded once; let it go
			return decodeDirectory(d, raw)
		}
		for dir, err := range dirstore.WalkClosure(ctx, root, get) {
			if !yield(dir, err) || err != nil {
				return
			}
		}
	}
}

func (s *Directories) Put(ctx context.Context, d *castorev1.Directory) (castore.Digest, error) {
	p := s.PutMultiple(ctx)
	if err := p.Put(d); err != nil {
		return castore.Digest{}, err
	}
	return p.Close()
}

// PutMultiple collects a closure, validated as it arrives; Close stores it
// in one transaction that first checks every child named from outside
// the closure is committed, so nothing is stored whose closure is not.
func (s *Directories) PutMultiple(ctx context.Context) castore.DirectoryPutter {
	return dirstore.NewPutter(func(d castore.Digest) (*castorev1.Directory, error) { return s.Get(ctx, d) },
		func(dirs []*castorev1.Directory) error { return s.store(ctx, dirs) })
}

// store inserts dirs (leaves first) in one transaction. Children outside
// the batch were looked up while validating; the transaction looks again,
// locking them (FOR KEY SHARE), so a garbage collector cannot take one
// away between the look and the commit.
func (s *Directories) store(ctx context.Context, dirs []*castorev1.Directory) error {
	digests := make([][]byte, len(dirs))
	children := make([][][]byte, len(dirs))
	data := make([][]byte, len(dirs))
	inBatch := make(map[castore.Digest]bool, len(dirs))
	var outside [][]byte
	for i, d := range dirs {
		raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(d)
		if err != nil {
			return err
		}
		dg := castore.DirectoryDigest(d)
		inBatch[dg] = true
		digests[i], data[i] = dg.Bytes(), raw
		children[i] = [][]byte{}
		for _, n := range d.GetDirectories() {
			children[i] = append(children[i], n.GetDigest())
			if cd, _ := castore.DigestFromBytes(n.GetDigest()); !inBatch[cd] {
				outside = append(outside, n.GetDigest())
			}
		}
	}
	return s.db.tx(ctx, "put directories", func(tx pgx.Tx) error {
		if len(outside) > 0 {
			var found int
			err := tx.QueryRow(ctx, `SELECT count(*) FROM (SELECT digest FROM directories
				WHERE digest = ANY($1) FOR KEY SHARE) AS present`, outside).Scan(&found)
			if err != nil {
				return err
			}
			if want := countDistinct(outside); found != want {
				return fmt.Errorf("%d of the %d directories referenced from outside the closure are not stored", want-found, want)
			}
		}
		// One round trip: the inserts go pipelined, as a batch. What is
		// stored already, or named from outside, is touched: a sweep
		// running meanwhile in another daemon then spares it.
		b := &pgx.Batch{}
		if len(outside) > 0 {
			b.Queue(`UPDATE directories SET touched = now() WHERE digest = ANY($1)`, outside)
		}
		for i := range dirs {
			b.Queue(`INSERT INTO directories (digest, children, data) VALUES ($1, $2, $3)
				ON CONFLICT (digest) DO UPDATE SET touched = now()`, digests[i], children[i], data[i])
		}
		return tx.SendBatch(ctx, b).Close()
	})
}

func countDistinct(keys [][]byte) int {
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		seen[string(k)] = true
	}
	return len(seen)
}
