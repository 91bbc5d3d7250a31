package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"

	bolt "go.etcd.io/bbolt"

	"github.com/tvix-go/tvix/castore"
)

// CheckIndex checks, without reading contents, that the store's index
// agrees with its files: every pack an entry names is there and long
// enough for the entry, and every chunk a manifest lists is indexed. It
// is what `tvix store verify` runs to notice lost or truncated packs
// cheaply; --check-contents then hashes what is there. It returns the
// problems found. Stores without an index of their own (memory, the
// object-store layout) find none.
func (s *Store) CheckIndex(ctx context.Context) ([]string, error) {
	b, ok := s.b.(*packBackend)
	if !ok {
		return nil, nil
	}
	rep, err := b.checkIndex(ctx)
	return rep.problems, err
}

type indexReport struct {
	chunks   int
	bytes    uint64
	problems []string
}

func (b *packBackend) checkIndex(ctx context.Context) (indexReport, error) {
	var rep indexReport
	sizes := map[uint64]int64{} // -1: missing
	type packTrouble struct {
		missing    bool
		past       int
		worstEnd   int64
		firstChunk castore.Digest
	}
	trouble := map[uint64]*packTrouble{}
	packSize := func(id uint64) (int64, error) {
		if sz, ok := sizes[id]; ok {
			return sz, nil
		}
		fi, err := os.Stat(b.packPath(id))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			sizes[id] = -1
		case err != nil:
			return 0, err
		default:
			sizes[id] = fi.Size()
		}
		return sizes[id], nil
	}
	err := b.db.View(func(tx *bolt.Tx) error {
		chunks := tx.Bucket([]byte(packChunksBucket))
		if err := chunks.ForEach(func(k, v []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			loc, err := decodeChunkLoc(v)
			if err != nil {
				rep.problems = append(rep.problems, fmt.Sprintf("index entry of chunk %x does not decode: %v", k, err))
				return nil
			}
			rep.chunks++
			rep.bytes += uint64(loc.size)
			sz, err := packSize(loc.pack)
			if err != nil {
				return err
			}
			end := loc.off + loc.size
			if sz >= 0 && end <= sz {
				return nil
			}
			pt := trouble[loc.pack]
			if pt == nil {
				pt = &packTrouble{missing: sz < 0}
				copy(pt.firstChunk[:], k)
				trouble[loc.pack] = pt
			}
			pt.past++
			pt.worstEnd = max(pt.worstEnd, end)
			return nil
		}); err != nil {
			return err
		}
		return tx.Bucket([]byte(packBlobsBucket)).ForEach(func(k, v []byte) error {
			var d castore.Digest
			copy(d[:], k)
			m, _, err := decodeManifest(d, v)
			if err != nil {
				rep.problems = append(rep.problems, fmt.Sprintf("manifest of blob %s does not decode: %v", d, err))
				return nil
			}
			for _, c := range m {
				if chunks.Get(c.Digest[:]) == nil {
					rep.problems = append(rep.problems, fmt.Sprintf("blob %s lists chunk %s, which is not indexed", d, c.Digest))
					break
				}
			}
			return nil
		})
	})
	if err != nil {
		return rep, fmt.Errorf("check pack index: %w", err)
	}
	ids := make([]uint64, 0, len(trouble))
	for id := range trouble {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		pt := trouble[id]
		if pt.missing {
			rep.problems = append(rep.problems, fmt.Sprintf("pack %s is missing: %d indexed chunks are in it (chunk %s first)", b.packPath(id), pt.past, pt.firstChunk))
		} else {
			rep.problems = append(rep.problems, fmt.Sprintf("pack %s is truncated: %d indexed chunks lie past its end (%d bytes; the index needs %d; chunk %s first)",
				b.packPath(id), pt.past, sizes[id], pt.worstEnd, pt.firstChunk))
		}
	}
	return rep, nil
}
