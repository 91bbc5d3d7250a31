package pathinfo

import (
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/tvix-go/tvix/internal/boltdb"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/storev1"
)

// Deleter is implemented by services that can forget store paths (garbage
// collection). Delete removes the given paths, except any that a path
// which stays still refers to (directly, or through others spared for
// that reason): the closure invariant, every recorded path's references
// recorded too, holds after it whatever was put meanwhile. It returns the
// paths it removed; a crash leaves all of them or none.
type Deleter interface {
	Delete(ctx context.Context, paths [][storepath.DigestSize]byte) ([][storepath.DigestSize]byte, error)
}

// SpareReferenced drops from gone every path a staying one refers to,
// transitively; all maps every path to its references (20-byte digests,
// as PathInfo keeps them). Deleters of other backends share it.
func SpareReferenced(gone map[[storepath.DigestSize]byte]bool, all map[[storepath.DigestSize]byte][][]byte) {
	var stay [][storepath.DigestSize]byte
	for d := range all {
		if !gone[d] {
			stay = append(stay, d)
		}
	}
	for len(stay) > 0 {
		d := stay[len(stay)-1]
		stay = stay[:len(stay)-1]
		for _, r := range all[d] {
			if len(r) != storepath.DigestSize {
				continue
			}
			if rd := [storepath.DigestSize]byte(r); gone[rd] {
				delete(gone, rd)
				stay = append(stay, rd)
			}
		}
	}
}

// referenceDigests are a PathInfo's references as path digests: Tvix's
// PathInfo keeps them as 20-byte digests.
func referenceDigests(info *storev1.PathInfo) [][]byte { return info.GetReferences() }

func (m *Memory) Delete(_ context.Context, paths [][storepath.DigestSize]byte) ([][storepath.DigestSize]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	gone := map[[storepath.DigestSize]byte]bool{}
	for _, p := range paths {
		if _, ok := m.infos[p]; ok {
			gone[p] = true
		}
	}
	all := make(map[[storepath.DigestSize]byte][][]byte, len(m.infos))
	for d, info := range m.infos {
		all[d] = referenceDigests(info)
	}
	SpareReferenced(gone, all)
	var out [][storepath.DigestSize]byte
	for _, p := range paths {
		if gone[p] {
			delete(m.infos, p)
			delete(m.access, p)
			delete(gone, p)
			out = append(out, p)
		}
	}
	m.files.mu.Lock()
	for url, d := range m.files.paths {
		if _, still := m.infos[d]; !still {
			delete(m.files.paths, url)
		}
	}
	m.files.mu.Unlock()
	return out, nil
}

// Delete runs in one transaction, so the check that nothing staying
// refers to a deleted path sees the puts that came while the collector
// decided; it reads the candidates and, through the referrers index,
// the paths that refer to them, not every path.
func (b *Bolt) Delete(_ context.Context, paths [][storepath.DigestSize]byte) ([][storepath.DigestSize]byte, error) {
	var out [][storepath.DigestSize]byte
	err := b.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte(bucket))
		gone := map[[storepath.DigestSize]byte]bool{}
		for _, p := range paths {
			if bk.Get(p[:]) != nil {
				gone[p] = true
			}
		}
		if len(gone) == 0 {
			return nil
		}
		// What sparing needs: the candidates' references, and those of
		// every path referring to a candidate (a spared candidate spares
		// what it refers to in turn, and those are candidates too).
		all := map[[storepath.DigestSize]byte][][]byte{}
		infos := map[[storepath.DigestSize]byte]*storev1.PathInfo{}
		read := func(k []byte) error {
			if len(k) != storepath.DigestSize {
				return fmt.Errorf("referrers index entry with a %d-byte digest", len(k))
			}
			d := [storepath.DigestSize]byte(k)
			if _, ok := all[d]; ok {
				return nil
			}
			info, err := indexedInfo(bk, k)
			if err != nil {
				return err
			}
			all[d], infos[d] = referenceDigests(info), info
			return nil
		}
		for p := range gone {
			if err := read(p[:]); err != nil {
				return err
			}
			for _, r := range referrerKeys(tx, p[:]) {
				if err := read(r); err != nil {
					return err
				}
			}
		}
		SpareReferenced(gone, all)
		ix := tx.Bucket([]byte(referrersBucket))
		for _, p := range paths {
			if !gone[p] {
				continue
			}
			if err := unindexReferences(ix, p[:], infos[p]); err != nil {
				return err
			}
			if err := bk.Delete(p[:]); err != nil {
				return err
			}
			delete(gone, p)
			out = append(out, p)
		}
		// nar-bridge's URL records of the deleted paths go with them.
		deleted := map[[storepath.DigestSize]byte]bool{}
		for _, p := range out {
			deleted[p] = true
		}
		if err := boltdb.DeleteMatching(tx.Bucket([]byte(narFilesBucket)), func(_, v []byte) bool {
			return len(v) == storepath.DigestSize && deleted[[storepath.DigestSize]byte(v)]
		}); err != nil {
			return err
		}
		if ab := tx.Bucket([]byte(accessBucket)); ab != nil {
			for _, p := range out {
				if err := ab.Delete(p[:]); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("delete %d path infos: %w", len(paths), err)
	}
	return out, nil
}
