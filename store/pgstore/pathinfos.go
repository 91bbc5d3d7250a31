package pgstore

import (
	"context"
	"errors"
	"fmt"
	"iter"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/pathinfo"
	"github.com/tvix-go/tvix/store/storev1"
)

// PathInfos is the PathInfoService on a DB. A Put is one transaction that
// checks the path's references are recorded (the closure invariant: a
// path anyone is handed comes with everything it refers to), merges with
// what is recorded (store paths are immutable, see pathinfo.Merge) and
// writes.
type PathInfos struct{ handle }

var (
	_ pathinfo.Service     = (*PathInfos)(nil)
	_ pathinfo.BatchPutter = (*PathInfos)(nil)
	_ pathinfo.NARFiles    = (*PathInfos)(nil)
)

// NewPathInfos serves path infos from db, which the caller closes.
func NewPathInfos(db *DB) *PathInfos { return &PathInfos{handle{db: db}} }

// OpenPathInfos opens a DB for a path-info service of its own.
func OpenPathInfos(ctx context.Context, raw string) (*PathInfos, error) {
	db, err := Open(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("path info service: %w", err)
	}
	return &PathInfos{handle{db: db, closeDB: true}}, nil
}

func (s *PathInfos) Get(ctx context.Context, digest [storepath.DigestSize]byte) (*storev1.PathInfo, error) {
	var raw []byte
	err := s.db.retry(ctx, "get path info", func(ctx context.Context) error {
		return s.db.pool.QueryRow(ctx, `SELECT data FROM path_infos WHERE digest = $1`, digest[:]).Scan(&raw)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("get path info %x: %w", digest, pathinfo.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get path info %x: %w", digest, err)
	}
	return decodeInfo(digest[:], raw)
}

func decodeInfo(key, raw []byte) (*storev1.PathInfo, error) {
	info := &storev1.PathInfo{}
	if err := proto.Unmarshal(raw, info); err != nil {
		return nil, fmt.Errorf("path info %x: decode: %w", key, err)
	}
	return info, nil
}

func (s *PathInfos) Put(ctx context.Context, info *storev1.PathInfo) (*storev1.PathInfo, error) {
	sp, err := pathinfo.Validate(info)
	if err != nil {
		return nil, fmt.Errorf("put path info: %w", err)
	}
	var stored *storev1.PathInfo
	err = s.db.tx(ctx, "put path info", func(tx pgx.Tx) error {
		if err := checkReferences(ctx, tx, info, nil); err != nil {
			return err
		}
		stored, err = putMerged(ctx, tx, sp.Digest[:], info)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("put path info %s: %w", sp, err)
	}
	return stored, nil
}

// PutBatch stores infos in one transaction, all or none; references may
// be to paths earlier or later in the batch.
func (s *PathInfos) PutBatch(ctx context.Context, infos []*storev1.PathInfo) error {
	keys := make([][]byte, len(infos))
	inBatch := map[[storepath.DigestSize]byte]bool{}
	for i, info := range infos {
		sp, err := pathinfo.Validate(info)
		if err != nil {
			return fmt.Errorf("put path info: %w", err)
		}
		keys[i] = sp.Digest[:]
		inBatch[sp.Digest] = true
	}
	err := s.db.tx(ctx, "put path infos", func(tx pgx.Tx) error {
		for i, info := range infos {
			if err := checkReferences(ctx, tx, info, inBatch); err != nil {
				return err
			}
			if _, err := putMerged(ctx, tx, keys[i], info); err != nil {
				return fmt.Errorf("%s: %w", castore.NodeName(info.GetNode()), err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("put %d path infos: %w", len(infos), err)
	}
	return nil
}

// checkReferences fails with pathinfo.ErrMissingReference naming the first
// reference (other than the path itself and those in also) that is not
// recorded. The rows found stay locked (FOR KEY SHARE) until the
// transaction ends, so a collector deleting paths cannot remove one
// between this check and the commit.
func checkReferences(ctx context.Context, tx pgx.Tx, info *storev1.PathInfo, also map[[storepath.DigestSize]byte]bool) error {
	self := string(castore.NodeName(info.GetNode()))
	names := info.GetNarinfo().GetReferenceNames()
	var want [][]byte
	for i, ref := range info.GetReferences() {
		var d [storepath.DigestSize]byte
		copy(d[:], ref)
		if names[i] != self && !also[d] {
			want = append(want, ref)
		}
	}
	if len(want) == 0 {
		return nil
	}
	rows, err := tx.Query(ctx, `SELECT digest FROM path_infos WHERE digest = ANY($1) FOR KEY SHARE`, want)
	if err != nil {
		return err
	}
	found, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return err
	}
	present := make(map[string]bool, len(found))
	for _, f := range found {
		present[string(f)] = true
	}
	for i, ref := range info.GetReferences() {
		var d [storepath.DigestSize]byte
		copy(d[:], ref)
		if names[i] != self && !also[d] && !present[string(ref)] {
			return fmt.Errorf("%s: %w: %s", self, pathinfo.ErrMissingReference, names[i])
		}
	}
	return nil
}

// putMerged writes info under key merged with what is recorded, in tx:
// the recorded row is locked (FOR UPDATE) from the look to the write.
func putMerged(ctx context.Context, tx pgx.Tx, key []byte, info *storev1.PathInfo) (*storev1.PathInfo, error) {
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(info)
	if err != nil {
		return nil, err
	}
	tag, err := tx.Exec(ctx, `INSERT INTO path_infos (digest, refs, data) VALUES ($1, $2, $3)
		ON CONFLICT (digest) DO NOTHING`, key, refsOf(info), raw)
	if err != nil {
		return nil, err
	}
	if tag.RowsAffected() == 1 {
		return info, nil
	}
	var oldRaw []byte
	if err := tx.QueryRow(ctx, `SELECT data FROM path_infos WHERE digest = $1 FOR UPDATE`, key).Scan(&oldRaw); err != nil {
		return nil, fmt.Errorf("read the recorded path info: %w", err)
	}
	old, err := decodeInfo(key, oldRaw)
	if err != nil {
		return nil, err
	}
	merged, err := pathinfo.Merge(old, info)
	if err != nil {
		return nil, err
	}
	if proto.Equal(merged, old) {
		return old, nil
	}
	if raw, err = (proto.MarshalOptions{Deterministic: true}).Marshal(merged); err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, `UPDATE path_infos SET data = $2 WHERE digest = $1`, key, raw); err != nil {
		return nil, err
	}
	return merged, nil
}

func refsOf(info *storev1.PathInfo) [][]byte {
	refs := info.GetReferences()
	if refs == nil {
		return [][]byte{}
	}
	return refs
}

// listPage is how many path infos List reads per query: a slow consumer
// holds no transaction or connection open between pages.
const listPage = 256

func (s *PathInfos) List(ctx context.Context) iter.Seq2[*storev1.PathInfo, error] {
	return func(yield func(*storev1.PathInfo, error) bool) {
		after := []byte{}
		for {
			type row struct{ key, data []byte }
			var page []row
			err := s.db.retry(ctx, "list path infos", func(ctx context.Context) error {
				rows, err := s.db.pool.Query(ctx, `SELECT digest, data FROM path_infos WHERE digest > $1 ORDER BY digest LIMIT $2`, after, listPage)
				if err != nil {
					return err
				}
				page, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
					var x row
					err := r.Scan(&x.key, &x.data)
					return x, err
				})
				return err
			})
			if err != nil {
				yield(nil, fmt.Errorf("list path infos: %w", err))
				return
			}
			for _, r := range page {
				info, err := decodeInfo(r.key, r.data)
				if !yield(info, err) || err != nil {
					return
				}
			}
			if len(page) < listPage {
				return
			}
			after = page[len(page)-1].key
		}
	}
}

// Referrers returns the path infos that refer to digest (an index lookup:
// migration 3), itself included when it refers to itself.
func (s *PathInfos) Referrers(ctx context.Context, digest [storepath.DigestSize]byte) ([]*storev1.PathInfo, error) {
	var infos []*storev1.PathInfo
	err := s.db.retry(ctx, "query referrers", func(ctx context.Context) error {
		infos = infos[:0]
		rows, err := s.db.pool.Query(ctx, `SELECT digest, data FROM path_infos WHERE refs @> ARRAY[$1::bytea]`, digest[:])
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var key, raw []byte
			if err := rows.Scan(&key, &raw); err != nil {
				return err
			}
			info, err := decodeInfo(key, raw)
			if err != nil {
				return err
			}
			infos = append(infos, info)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("query referrers of %x: %w", digest, err)
	}
	return infos, nil
}

func (s *PathInfos) PutNARFile(ctx context.Context, url string, path [storepath.DigestSize]byte) error {
	err := s.db.retry(ctx, "record NAR file", func(ctx context.Context) error {
		_, err := s.db.pool.Exec(ctx, `INSERT INTO nar_files (url, path) VALUES ($1, $2)
			ON CONFLICT (url) DO UPDATE SET path = excluded.path`, url, path[:])
		return err
	})
	if err != nil {
		return fmt.Errorf("record NAR file %s: %w", url, err)
	}
	return nil
}

func (s *PathInfos) GetNARFile(ctx context.Context, url string) ([storepath.DigestSize]byte, error) {
	var d [storepath.DigestSize]byte
	var raw []byte
	err := s.db.retry(ctx, "look up NAR file", func(ctx context.Context) error {
		return s.db.pool.QueryRow(ctx, `SELECT path FROM nar_files WHERE url = $1`, url).Scan(&raw)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return d, fmt.Errorf("NAR file %s: %w", url, pathinfo.ErrNotFound)
	}
	if err != nil {
		return d, fmt.Errorf("look up NAR file %s: %w", url, err)
	}
	copy(d[:], raw)
	return d, nil
}
