package blobstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/internal/boltdb"
	"github.com/tvix-go/tvix/internal/touchlog"
)

// Garbage collection of the pack store. Each step leaves a store that is
// whole if the process dies right after it:
//   - index entries of dead chunks, chunk lists and extents are deleted
//     in bbolt transactions (of sweepBatch keys each); the bytes they
//     named become unindexed, as a crashed put's are;
//   - a pack no index entry points into is removed (packs of a crashed
//     import are such packs);
//   - a pack mostly dead is compacted: its live chunks are copied into a
//     new pack, which is made durable, then one transaction points their
//     entries at the copies, then the old pack is removed. A crash before
//     the switch leaves an unindexed new pack, after it an old pack with
//     nothing live: the next collection removes either.
//
// Readers that located a chunk in a pack before it was removed keep
// reading it: open files are reference-counted (packCache), and an
// unlinked file stays readable while open. A lookup that finds the file
// gone looks the chunk up again and finds the copy.

// sweepBatch bounds what one transaction deletes: lookups that touch wait
// for it (touchlog.Exclusive).
const sweepBatch = 4096

func (b *packBackend) setTouchLog(l *touchlog.Log) { b.touch = l }

type deadChunk struct {
	d   castore.Digest
	loc []byte // the entry as read: deleted only if unchanged
}

func (b *packBackend) sweep(ctx context.Context, req castore.SweepRequest) (castore.SweepReport, error) {
	var rep castore.SweepReport
	protected := func(d castore.Digest) bool { return b.touch.Since(d, req.Since) }
	progress := func(phase string, objects, bytes int64) {
		if req.Progress != nil {
			req.Progress(castore.SweepProgress{Phase: phase, Objects: objects, Bytes: bytes})
		}
	}
	// Decide from a snapshot; the deletions below check again under the
	// sweep lock whatever was touched since.
	liveChunks := map[castore.Digest]struct{}{}
	var deadBlobs []castore.Digest
	var deadChunks []deadChunk
	var deadExtents []castore.Digest
	var examined int64
	err := b.db.View(func(tx *bolt.Tx) error {
		err := tx.Bucket([]byte(packBlobsBucket)).ForEach(func(k, v []byte) error {
			d := castore.Digest(k)
			examined++
			if live := req.Live(d); live || protected(d) {
				if !live {
					rep.Kept++
				}
				m, _, err := decodeManifest(d, v)
				if err != nil {
					return fmt.Errorf("chunk list of %s: %w", d, err)
				}
				for _, c := range m {
					liveChunks[c.Digest] = struct{}{}
				}
				return nil
			}
			deadBlobs = append(deadBlobs, d)
			return nil
		})
		if err != nil {
			return err
		}
		err = tx.Bucket([]byte(packChunksBucket)).ForEach(func(k, v []byte) error {
			d := castore.Digest(k)
			examined++
			if examined%65536 == 0 {
				progress("sweep", examined, 0)
			}
			if _, ok := liveChunks[d]; ok || req.Live(d) {
				return nil
			}
			if protected(d) {
				rep.Kept++
				return nil
			}
			deadChunks = append(deadChunks, deadChunk{d, append([]byte(nil), v...)})
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Bucket([]byte(packExtentsBucket)).ForEach(func(k, _ []byte) error {
			if d := castore.Digest(k); !req.Live(d) && !protected(d) {
				deadExtents = append(deadExtents, d)
			}
			return nil
		})
	})
	if err != nil {
		return rep, fmt.Errorf("sweep pack index: %w", err)
	}
	liveChunks = nil
	dead := map[castore.Digest]bool{}
	if req.DryRun {
		for _, c := range deadChunks {
			dead[c.d] = true
		}
		rep.Blobs, rep.Chunks = int64(len(deadBlobs)), int64(len(deadChunks))
	} else {
		r, err := b.deleteEntries(ctx, deadBlobs, deadChunks, deadExtents, protected)
		rep = rep.Add(r)
		if err != nil {
			return rep, err
		}
		progress("sweep", examined, 0)
	}
	if err := b.sweepPacks(ctx, req, dead, &rep, progress); err != nil {
		return rep, err
	}
	return rep, nil
}

// deleteEntries deletes index entries in batches, each deciding again
// under the sweep lock: an entry touched since the snapshot stays, and so
// does one that changed (a chunk written again elsewhere meanwhile).
func (b *packBackend) deleteEntries(ctx context.Context, blobs []castore.Digest, chunks []deadChunk, extents []castore.Digest, protected func(castore.Digest) bool) (castore.SweepReport, error) {
	var rep castore.SweepReport
	for len(blobs) > 0 || len(chunks) > 0 || len(extents) > 0 {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		nb, nc, ne := min(len(blobs), sweepBatch), min(len(chunks), sweepBatch), min(len(extents), sweepBatch)
		var r castore.SweepReport
		err := b.touch.Exclusive(func() error {
			return b.db.Update(func(tx *bolt.Tx) error {
				r = castore.SweepReport{}
				bb, cb, eb := tx.Bucket([]byte(packBlobsBucket)), tx.Bucket([]byte(packChunksBucket)), tx.Bucket([]byte(packExtentsBucket))
				for _, d := range blobs[:nb] {
					if protected(d) {
						r.Kept++
						continue
					}
					if bb.Get(d[:]) != nil {
						if err := bb.Delete(d[:]); err != nil {
							return err
						}
						r.Blobs++
					}
				}
				for _, c := range chunks[:nc] {
					if protected(c.d) {
						r.Kept++
						continue
					}
					if v := cb.Get(c.d[:]); v != nil && string(v) == string(c.loc) {
						if err := cb.Delete(c.d[:]); err != nil {
							return err
						}
						r.Chunks++
					}
				}
				for _, d := range extents[:ne] {
					if !protected(d) {
						if err := eb.Delete(d[:]); err != nil {
							return err
						}
					}
				}
				return nil
			})
		})
		if err != nil {
			return rep, fmt.Errorf("delete index entries: %w", err)
		}
		rep = rep.Add(r)
		blobs, chunks, extents = blobs[nb:], chunks[nc:], extents[ne:]
	}
	return rep, nil
}

// packUse is what the index points at in one pack.
type packUse struct {
	live int64 // bytes of indexed chunks
}

// sweepPacks removes packs nothing live is in and compacts mostly dead
// ones. dead lists chunks a dry run would have deleted.
func (b *packBackend) sweepPacks(ctx context.Context, req castore.SweepRequest, dead map[castore.Digest]bool, rep *castore.SweepReport, progress func(string, int64, int64)) error {
	if !req.DryRun {
		b.sealIdle()
	}
	// Packs this process appends to, or is creating, are not ours to
	// judge: their chunks may be pending.
	b.mu.Lock()
	limit := b.nextPack
	busy := map[uint64]bool{}
	for id := range b.live {
		busy[id] = true
	}
	for id := range b.creating {
		busy[id] = true
	}
	b.mu.Unlock()
	use := map[uint64]*packUse{}
	err := b.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(packChunksBucket)).ForEach(func(k, v []byte) error {
			if dead[castore.Digest(k)] {
				return nil
			}
			loc, err := decodeChunkLoc(v)
			if err != nil {
				return fmt.Errorf("chunk %x: %w", k, err)
			}
			u := use[loc.pack]
			if u == nil {
				u = &packUse{}
				use[loc.pack] = u
			}
			u.live += loc.size
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("sweep packs: %w", err)
	}
	entries, err := os.ReadDir(filepath.Join(b.root, "packs"))
	if err != nil {
		return fmt.Errorf("sweep packs: %w", err)
	}
	type candidate struct {
		id         uint64
		size, live int64
	}
	var compact []candidate
	for _, e := range entries {
		var id uint64
		if n, err := fmt.Sscanf(e.Name(), "%d.pack", &id); err != nil || n != 1 || e.Name() != fmt.Sprintf("%08d.pack", id) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return fmt.Errorf("sweep packs: %w", err)
		}
		var live int64
		if u := use[id]; u != nil {
			live = u.live
		}
		if id >= limit || busy[id] {
			rep.LiveBytes += fi.Size()
			continue
		}
		switch {
		case live == 0:
			rep.FilesRemoved++
			rep.BytesFreed += fi.Size()
			if !req.DryRun {
				if err := b.removePack(id); err != nil {
					return err
				}
			}
		case req.CompactBelow > 0 && float64(live) < req.CompactBelow*float64(fi.Size()):
			compact = append(compact, candidate{id, fi.Size(), live})
			rep.LiveBytes += live
		default:
			rep.LiveBytes += fi.Size()
		}
	}
	if req.DryRun {
		for _, c := range compact {
			rep.FilesCompacted++
			rep.BytesMoved += c.live
			rep.BytesFreed += c.size - c.live
		}
		return nil
	}
	// Removed packs' names must be gone for good before compaction
	// counts on their space.
	if err := b.fs.syncDir(filepath.Join(b.root, "packs")); err != nil {
		return fmt.Errorf("sweep packs: %w", err)
	}
	// Mostly dead packs are merged: their live chunks go into as few new
	// packs as fit packSealSize, not one small pack each.
	for len(compact) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		var group []uint64
		var live, size int64
		for len(compact) > 0 && (len(group) == 0 || live+compact[0].live <= packSealSize) {
			group = append(group, compact[0].id)
			live += compact[0].live
			size += compact[0].size
			compact = compact[1:]
		}
		moved, err := b.compactPacks(ctx, group)
		if err != nil {
			return fmt.Errorf("compact packs %v: %w", group, err)
		}
		rep.FilesCompacted += int64(len(group))
		rep.BytesMoved += moved
		rep.BytesFreed += size - moved
		progress("compact", rep.FilesCompacted, rep.BytesMoved)
	}
	return nil
}

// sealIdle seals the packs no writer holds, so that they can be judged
// (and their garbage freed) like any other: a daemon would otherwise keep
// appending to the same few packs, and a sweep never free what they hold.
// New writers get new packs.
func (b *packBackend) sealIdle() {
	b.mu.Lock()
	idle := b.idle
	b.idle = nil
	b.mu.Unlock()
	for _, p := range idle {
		p.mu.Lock()
		if err := p.flushLocked(); err == nil {
			p.buf = nil
		}
		p.mu.Unlock()
		b.mu.Lock()
		p.sealed = true
		b.retireLocked(p)
		b.mu.Unlock()
	}
}

// removePack unlinks a pack; readers holding it open finish on it.
func (b *packBackend) removePack(id uint64) error {
	b.mu.Lock()
	_, live := b.live[id]
	b.mu.Unlock()
	if live {
		return nil
	}
	if err := os.Remove(b.packPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove pack %d: %w", id, err)
	}
	b.packs.forget(id)
	return nil
}

type movedChunk struct {
	d        castore.Digest
	old, new chunkLoc
}

// compactPacks copies the live chunks of the packs ids into one new pack,
// each verified on the way (a corrupt chunk is not copied: its entry keeps
// pointing at its old pack, which then stays), switches their entries in
// one transaction and removes the old packs. It returns the bytes copied.
func (b *packBackend) compactPacks(ctx context.Context, ids []uint64) (int64, error) {
	from := map[uint64]bool{}
	for _, id := range ids {
		from[id] = true
	}
	var chunks []movedChunk
	err := b.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(packChunksBucket)).ForEach(func(k, v []byte) error {
			loc, err := decodeChunkLoc(v)
			if err == nil && from[loc.pack] {
				chunks = append(chunks, movedChunk{d: castore.Digest(k), old: loc})
			}
			return nil
		})
	})
	if err != nil {
		return 0, err
	}
	// In each pack's order, so a blob's chunks stay one range.
	slices.SortFunc(chunks, func(a, b movedChunk) int {
		if c := cmp.Compare(a.old.pack, b.old.pack); c != 0 {
			return c
		}
		return cmp.Compare(a.old.off, b.old.off)
	})
	srcs := map[uint64]*packRef{}
	defer func() {
		for _, r := range srcs {
			b.packs.release(r)
		}
	}()
	for _, id := range ids {
		r, err := b.packs.acquire(id)
		if err != nil {
			return 0, err
		}
		srcs[id] = r
	}
	b.mu.Lock()
	newID := b.nextPack
	b.nextPack++
	b.creating[newID] = true
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.creating, newID)
		b.mu.Unlock()
	}()
	dst, err := b.fs.create(b.packPath(newID))
	if err != nil {
		return 0, err
	}
	defer dst.Close()
	var off int64
	corrupt := map[uint64]int{}
	buf := make([]byte, 0, 1<<20)
	var moved []movedChunk
	for _, c := range chunks {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if int64(cap(buf)) < c.old.size {
			buf = make([]byte, c.old.size)
		}
		data := buf[:c.old.size]
		if _, err := srcs[c.old.pack].f.ReadAt(data, c.old.off); err != nil {
			return 0, fmt.Errorf("read chunk %s: %w", c.d, err)
		}
		if castore.HashBlob(data) != c.d {
			corrupt[c.old.pack]++
			continue
		}
		if err := b.fs.writeAt(dst, data, off); err != nil {
			return 0, fmt.Errorf("write pack %d: %w", newID, err)
		}
		c.new = chunkLoc{pack: newID, off: off, size: c.old.size}
		moved = append(moved, c)
		off += c.old.size
	}
	if err := b.fs.datasync(dst); err != nil {
		return 0, fmt.Errorf("flush pack %d: %w", newID, err)
	}
	if err := b.fs.syncDir(filepath.Join(b.root, "packs")); err != nil {
		return 0, fmt.Errorf("flush pack directory: %w", err)
	}
	err = b.db.Update(func(tx *bolt.Tx) error {
		if meta := tx.Bucket([]byte(packMetaBucket)); meta.Sequence() < newID {
			if err := meta.SetSequence(newID); err != nil {
				return err
			}
		}
		cb := tx.Bucket([]byte(packChunksBucket))
		for _, c := range moved {
			v := cb.Get(c.d[:])
			if v == nil || string(v) != string(c.old.encode()) {
				continue // deleted or rewritten meanwhile
			}
			if err := cb.Put(c.d[:], c.new.encode()); err != nil {
				return err
			}
		}
		// A blob exactly an old pack is no longer exactly a file.
		return boltdb.DeleteMatching(tx.Bucket([]byte(packExtentsBucket)), func(_, v []byte) bool {
			e, err := decodeExtent(v)
			return err == nil && from[e.pack]
		})
	})
	if err != nil {
		return 0, fmt.Errorf("switch index to pack %d: %w", newID, err)
	}
	if len(moved) == 0 {
		_ = os.Remove(b.packPath(newID))
	}
	var kept []uint64
	for _, id := range ids {
		if corrupt[id] > 0 {
			// What could not be copied is still there; verify names it.
			kept = append(kept, id)
			continue
		}
		if err := b.removePack(id); err != nil {
			return off, err
		}
	}
	if len(kept) > 0 {
		return off, fmt.Errorf("%w: chunks of packs %v do not hash to their digests; those packs are kept", ErrCorrupt, kept)
	}
	return off, nil
}
