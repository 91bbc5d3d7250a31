package blobstore

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/internal/boltdb"
)

// The index (index.db, bbolt) is what makes chunks visible after a
// restart: a chunk's bytes in a pack count only once an entry names them.
const (
	packChunksBucket = "chunks"
	packBlobsBucket  = "blobs"
	packMetaBucket   = "packs"
	// packExtentsBucket maps a blob to the pack that holds exactly its
	// bytes, from offset 0 (see packTxn.largeBlob).
	packExtentsBucket = "extents"
)

// firstFreePack is the number after every pack the index has recorded
// (its sequence, advanced by each barrier) and every pack file present
// (created by a process that crashed before its barrier).
func firstFreePack(db *boltdb.DB, dir string) (uint64, error) {
	var last uint64
	if err := db.View(func(tx *bolt.Tx) error {
		last = tx.Bucket([]byte(packMetaBucket)).Sequence()
		return nil
	}); err != nil {
		return 0, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		var id uint64
		if n, err := fmt.Sscanf(e.Name(), "%d.pack", &id); err == nil && n == 1 {
			last = max(last, id)
		}
	}
	return last + 1, nil
}

func (b *packBackend) lookupChunk(d castore.Digest) (chunkLoc, bool, error) {
	b.mu.Lock()
	pc, ok := b.pendingChunks[d]
	b.mu.Unlock()
	if ok {
		return pc.loc, true, nil
	}
	return b.durableChunk(d)
}

func (b *packBackend) durableChunk(d castore.Digest) (loc chunkLoc, ok bool, err error) {
	err = b.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket([]byte(packChunksBucket)).Get(d[:])
		if v == nil {
			return nil
		}
		ok = true
		loc, err = decodeChunkLoc(v)
		return err
	})
	if err != nil {
		return chunkLoc{}, false, fmt.Errorf("chunk %s: %w", d, err)
	}
	return loc, ok, nil
}

func (b *packBackend) hasChunk(d castore.Digest) (bool, error) {
	_, ok, err := b.lookupChunk(d)
	return ok, err
}

func (b *packBackend) hasDurable(d castore.Digest) (bool, error) {
	var ok bool
	err := b.db.View(func(tx *bolt.Tx) error {
		ok = tx.Bucket([]byte(packBlobsBucket)).Get(d[:]) != nil ||
			tx.Bucket([]byte(packChunksBucket)).Get(d[:]) != nil
		return nil
	})
	return ok, err
}

func (b *packBackend) manifest(d castore.Digest) ([]castore.ChunkMeta, bool, error) {
	b.mu.Lock()
	m, ok := b.pendingBlobs[d]
	b.mu.Unlock()
	if ok {
		return m, true, nil
	}
	var raw []byte
	if err := b.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket([]byte(packBlobsBucket)).Get(d[:]); v != nil {
			raw = append([]byte(nil), v...)
		}
		return nil
	}); err != nil {
		return nil, false, err
	}
	if raw == nil {
		return nil, false, nil
	}
	return decodeManifest(d, raw)
}

// flush makes everything committed so far durable: the packs' data first,
// then the index entries that point into them, in one bbolt transaction.
//
// A failed index commit leaves the entries pending for the next flush:
// the packs' bytes they name are durable by then. A failed pack flush does
// not: after a failed writeback Linux may drop the dirty pages, and a
// retried fdatasync succeeds without them, so the bytes it covered are
// never indexed (see forgetLocked).
func (b *packBackend) flush() error {
	b.mu.Lock()
	dirty := make([]*packFile, 0, len(b.dirty))
	for p := range b.dirty {
		dirty = append(dirty, p)
		p.syncing = true
	}
	clear(b.dirty)
	// Whatever happens, the packs are no longer being synced here; the
	// sealed ones that are durable now (not dirty again, nor lost) close
	// their appending descriptors.
	defer func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, p := range dirty {
			p.syncing = false
			b.retireLocked(p)
		}
	}()
	chunks := make(map[castore.Digest]chunkLoc, len(b.pendingChunks))
	for d, pc := range b.pendingChunks {
		chunks[d] = pc.loc
	}
	blobs := make(map[castore.Digest][]castore.ChunkMeta, len(b.pendingBlobs))
	for d, m := range b.pendingBlobs {
		blobs[d] = m
	}
	extents := maps.Clone(b.pendingExtents)
	created, lastPack := b.created, b.nextPack-1
	b.created = nil
	b.mu.Unlock()
	if len(chunks) == 0 && len(blobs) == 0 {
		b.mu.Lock()
		b.created = append(created, b.created...)
		b.mu.Unlock()
		return nil
	}
	// retry keeps what this flush could not finish for the next one, less
	// the packs it lost.
	retry := func(lost []*packFile, err error) error {
		b.mu.Lock()
		defer b.mu.Unlock()
		if len(lost) > 0 {
			b.forgetLocked(lost, err)
		}
		for _, p := range dirty {
			if p.lost == nil {
				b.dirty[p] = struct{}{}
			}
		}
		var keep []*packFile
		for _, p := range created {
			if p.lost == nil {
				keep = append(keep, p)
			}
		}
		b.created = append(keep, b.created...)
		return err
	}
	// The packs' data goes to the disk while the index entries are put
	// in a transaction; it commits only once the data is durable.
	type syncResult struct {
		lost []*packFile
		err  error
	}
	packsSynced := make(chan syncResult, 1)
	go func() {
		lost, err := syncPacks(b.fs, dirty, created, filepath.Join(b.root, "packs"))
		packsSynced <- syncResult{lost, err}
	}()
	tx, err := b.db.Begin(true)
	if err != nil {
		if r := <-packsSynced; r.err != nil {
			return retry(r.lost, r.err)
		}
		return retry(nil, fmt.Errorf("commit chunk index: %w", err))
	}
	if err := putIndex(tx, lastPack, chunks, blobs, extents); err != nil {
		tx.Rollback()
		if r := <-packsSynced; r.err != nil {
			return retry(r.lost, r.err)
		}
		return retry(nil, fmt.Errorf("commit chunk index: %w", err))
	}
	if r := <-packsSynced; r.err != nil {
		tx.Rollback()
		return retry(r.lost, r.err)
	}
	if err := tx.Commit(); err != nil {
		return retry(nil, fmt.Errorf("commit chunk index: %w", err))
	}
	b.mu.Lock()
	for d := range chunks {
		delete(b.pendingChunks, d)
	}
	for d := range blobs {
		delete(b.pendingBlobs, d)
	}
	for d := range extents {
		delete(b.pendingExtents, d)
	}
	b.mu.Unlock()
	return nil
}

// forgetLocked drops everything pending that the lost packs hold, and
// every pending manifest and extent that needs it, so that no flush ever
// indexes it; the lost packs take no more writers. Bytes of them indexed
// by earlier flushes stay readable: those were durable. Writers that began
// before the loss may have found a forgotten chunk and not written it, so
// their commits fail (packTxn.losses); if a blob whose Close had returned
// (a deferred put) is among the forgotten, Sync reports it from now on.
// b.mu is held.
func (b *packBackend) forgetLocked(lost []*packFile, cause error) {
	gone := make(map[uint64]bool, len(lost))
	for _, p := range lost {
		p.lost = cause
		gone[p.id] = true
	}
	b.idle = slices.DeleteFunc(b.idle, func(p *packFile) bool { return gone[p.id] })
	forgotten := map[castore.Digest]bool{}
	promised := false
	for d, pc := range b.pendingChunks {
		if gone[pc.loc.pack] {
			delete(b.pendingChunks, d)
			forgotten[d] = true
			promised = promised || pc.promised
		}
	}
	for d, m := range b.pendingBlobs {
		if slices.ContainsFunc(m, func(c castore.ChunkMeta) bool { return forgotten[c.Digest] }) {
			delete(b.pendingBlobs, d)
		}
	}
	for d, e := range b.pendingExtents {
		if gone[e.pack] {
			delete(b.pendingExtents, d)
		}
	}
	b.losses++
	b.lossErr = cause
	if promised && b.lost == nil {
		b.lost = fmt.Errorf("blobs closed with deferred sync were lost: %w", cause)
	}
}

// putIndex records chunks, manifests, extents and the highest pack number.
func putIndex(tx *bolt.Tx, lastPack uint64, chunks map[castore.Digest]chunkLoc, blobs map[castore.Digest][]castore.ChunkMeta, extents map[castore.Digest]extent) error {
	if meta := tx.Bucket([]byte(packMetaBucket)); meta.Sequence() < lastPack {
		if err := meta.SetSequence(lastPack); err != nil {
			return err
		}
	}
	cb, bb := tx.Bucket([]byte(packChunksBucket)), tx.Bucket([]byte(packBlobsBucket))
	// In key order: bbolt splits nodes only at commit, so random-order
	// puts of many keys shift an ever larger node on every insert.
	for _, d := range slices.SortedFunc(maps.Keys(chunks), compareDigests) {
		if err := cb.Put(d[:], chunks[d].encode()); err != nil {
			return err
		}
	}
	for _, d := range slices.SortedFunc(maps.Keys(blobs), compareDigests) {
		if err := bb.Put(d[:], encodeManifest(blobs[d])); err != nil {
			return err
		}
	}
	eb := tx.Bucket([]byte(packExtentsBucket))
	for _, d := range slices.SortedFunc(maps.Keys(extents), compareDigests) {
		if err := eb.Put(d[:], extents[d].encode()); err != nil {
			return err
		}
	}
	return nil
}

func compareDigests(a, b castore.Digest) int { return bytes.Compare(a[:], b[:]) }
