package gc

import (
	"slices"

	"github.com/tvix-go/tvix/nix/storepath"
)

// evict picks least recently used paths of keep to delete until the NAR
// sizes of those left sum to at most maxSize. A path counts as used when
// it or anything referring to it (transitively) was: using a path uses
// its closure. Referrers are evicted no later than their references (ties
// go referrers first), so whatever stays keeps its whole closure; paths in
// protected (the roots' closures) never go.
func (c *Collector) evict(paths map[[storepath.DigestSize]byte]*pathRecord, keep, protected map[[storepath.DigestSize]byte]bool, atimes map[[storepath.DigestSize]byte]int64, maxSize uint64) [][storepath.DigestSize]byte {
	var size uint64
	for d := range keep {
		size += paths[d].narSize
	}
	if size <= maxSize {
		return nil
	}
	order := deletionOrder(paths, keep) // referrers first
	pos := make(map[[storepath.DigestSize]byte]int, len(order))
	eff := make(map[[storepath.DigestSize]byte]int64, len(order))
	for i, d := range order {
		pos[d] = i
		eff[d] = max(eff[d], atimes[d])
		for _, r := range paths[d].refs {
			if keep[r] && r != d {
				eff[r] = max(eff[r], eff[d])
			}
		}
	}
	var cands [][storepath.DigestSize]byte
	for _, d := range order {
		if !protected[d] {
			cands = append(cands, d)
		}
	}
	slices.SortStableFunc(cands, func(a, b [storepath.DigestSize]byte) int {
		if eff[a] != eff[b] {
			if eff[a] < eff[b] {
				return -1
			}
			return 1
		}
		return pos[a] - pos[b]
	})
	var out [][storepath.DigestSize]byte
	for _, d := range cands {
		if size <= maxSize {
			break
		}
		out = append(out, d)
		size -= paths[d].narSize
	}
	return out
}
