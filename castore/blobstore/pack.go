package blobstore

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/internal/boltdb"
	"github.com/tvix-go/tvix/internal/touchlog"
)

// The pack store keeps chunks appended to a few large files instead of one
// file per chunk: a tree of 20 000 small files costs 20 000 file creations,
// renames and directory updates in the object-store layout, but only
// sequential appends here, and a whole import becomes durable with one
// flush of each pack it wrote to plus one index commit. A chunk of a large
// file lands right after the previous one, so reading the file back is a
// sequential read of the pack that the kernel's readahead serves. Chunks
// carry no framing, so a blob's chunks form one byte range of the pack:
// a read across chunk boundaries is one pread (or one splice, see
// castore.FileRanger).
const (
	packFormatVersion = "tvix-go packstore v1\n"
	// A pack stops taking new writers past this size; a blob being written
	// finishes in the pack it started in, so packs of large blobs run over.
	packSealSize = 256 << 20
	// Deferred puts are indexed in memory until a sync; past this many a
	// commit syncs by itself, bounding that memory.
	maxPendingChunks = 1 << 20
)

// NewPack opens (creating if needed) a pack store in a directory:
// packs/<n>.pack hold chunk bytes, index.db (bbolt) maps chunk digests to
// their place in a pack and blobs of more than one chunk to their chunk
// list. A chunk is indexed only after its pack was flushed to disk, so a
// crash leaves at most unreferenced bytes at the end of a pack.
func NewPack(root string) (*Store, error) { return newPackStore(root, osFS{}) }

// newPackStore is NewPack on a file system of the caller's choice.
func newPackStore(root string, fsys packFS) (*Store, error) {
	// The format check comes first: a directory that is not a pack store
	// is refused before anything is created in it.
	if err := checkFormat(root, packFormatVersion, "packs", "tmp", "index.db"); err != nil {
		return nil, fmt.Errorf("open pack store %s: %w", root, err)
	}
	if err := os.MkdirAll(filepath.Join(root, "packs"), 0o755); err != nil {
		return nil, fmt.Errorf("open pack store %s: %w", root, err)
	}
	db, err := boltdb.Open(filepath.Join(root, "index.db"), packChunksBucket, packBlobsBucket, packMetaBucket, packExtentsBucket)
	if err != nil {
		return nil, fmt.Errorf("open pack store %s: %w", root, err)
	}
	b := &packBackend{
		root:           root,
		fs:             fsys,
		db:             db,
		live:           map[uint64]*packFile{},
		pendingChunks:  map[castore.Digest]pendingChunk{},
		pendingBlobs:   map[castore.Digest][]castore.ChunkMeta{},
		pendingExtents: map[castore.Digest]extent{},
		dirty:          map[*packFile]struct{}{},
		creating:       map[uint64]bool{},
	}
	if b.nextPack, err = firstFreePack(db, filepath.Join(root, "packs")); err != nil {
		db.Close()
		return nil, fmt.Errorf("open pack store %s: %w", root, err)
	}
	b.packs = newPackCache(maxOpenPacks, func(id uint64) (*os.File, error) { return fsys.open(b.packPath(id)) })
	b.barrier = newBarrier(func(batch []struct{}) []error { return sameForAll(b.flush(), len(batch)) })
	return newStore(b), nil
}

type packBackend struct {
	root string
	fs   packFS
	db   *boltdb.DB

	mu    sync.Mutex
	idle  []*packFile          // open for appending, held by no writer
	live  map[uint64]*packFile // packs this process appends to, until sealed and durable
	packs *packCache           // packs open for reading
	// Committed, not yet durable: indexed at the next barrier.
	pendingChunks  map[castore.Digest]pendingChunk
	pendingBlobs   map[castore.Digest][]castore.ChunkMeta
	pendingExtents map[castore.Digest]extent
	dirty          map[*packFile]struct{}
	closed         bool
	nextPack       uint64      // number of the next pack to create
	created        []*packFile // since the last barrier
	// losses counts flushes that lost packs (see forgetLocked), lossErr is
	// the last one's error, lost the error Sync reports from then on if
	// deferred blobs went with it.
	losses        uint64
	lossErr, lost error

	barrier *barrier[struct{}]

	// touch is the Store's (see touchlog); creating holds the numbers of
	// packs made but not yet in live (a sweep leaves them alone).
	touch    *touchlog.Log
	creating map[uint64]bool
}

func (b *packBackend) openChunk(d castore.Digest) (chunkReader, int64, error) {
	loc, ref, err := b.openLocated(d)
	if err != nil {
		return nil, 0, err
	}
	return fileChunk{SectionReader: io.NewSectionReader(ref.f, loc.off, loc.size), f: ref.f, off: loc.off,
		release: sync.OnceFunc(func() { b.packs.release(ref) })}, loc.size, nil
}

// backingFile returns the pack file that holds exactly blob d's bytes, if
// one does (a large blob written in one piece): a FUSE mount hands such a
// file to the kernel (passthrough), which then reads it without asking
// the mount.
func (b *packBackend) backingFile(d castore.Digest) (*os.File, int64, bool) {
	b.mu.Lock()
	e, ok := b.pendingExtents[d]
	b.mu.Unlock()
	if !ok {
		if err := b.db.View(func(tx *bolt.Tx) error {
			v := tx.Bucket([]byte(packExtentsBucket)).Get(d[:])
			if v == nil {
				return nil
			}
			var err error
			e, err = decodeExtent(v)
			ok = err == nil
			return err
		}); err != nil || !ok {
			return nil, 0, false
		}
	}
	ref, err := b.file(e.pack)
	if err != nil {
		return nil, 0, false
	}
	// Nobody says when the file is done with: go-fuse gives it to the
	// kernel while the open is answered (which holds the file itself from
	// then on), so it is held for a while, long past that.
	time.AfterFunc(backingHold, func() { b.packs.release(ref) })
	return ref.f, e.size, true
}

// backingHold is how long a file handed out by backingFile stays open.
const backingHold = time.Minute

// locate names the open pack file and the offset holding a chunk.
func (b *packBackend) locate(d castore.Digest) (*os.File, int64, int64, func(), bool) {
	loc, ref, err := b.openLocated(d)
	if err != nil {
		return nil, 0, 0, nil, false
	}
	return ref.f, loc.off, loc.size, sync.OnceFunc(func() { b.packs.release(ref) }), true
}

// openLocated looks a chunk up and opens its pack. A pack that is gone
// was compacted (or swept) after the lookup: the index names the chunk's
// new place, so it is looked up again.
func (b *packBackend) openLocated(d castore.Digest) (chunkLoc, *packRef, error) {
	for attempt := 0; ; attempt++ {
		loc, ok, err := b.lookupChunk(d)
		if err != nil {
			return loc, nil, err
		}
		if !ok {
			return loc, nil, fmt.Errorf("chunk %s: %w", d, castore.ErrNotFound)
		}
		ref, err := b.file(loc.pack)
		if errors.Is(err, fs.ErrNotExist) && attempt < 3 {
			continue
		}
		if err != nil {
			return loc, nil, fmt.Errorf("chunk %s: %w", d, err)
		}
		return loc, ref, nil
	}
}

func (b *packBackend) newTxn() (txn, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return &packTxn{b: b, losses: b.losses}, nil
}

// sync makes every blob closed so far durable, or says why it cannot:
// once a failed flush lost deferred blobs, that holds no more.
func (b *packBackend) sync() error {
	if err := b.barrier.wait(struct{}{}); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lost
}

func (b *packBackend) close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	var err error
	for _, p := range b.live {
		if ferr := p.flush(); err == nil {
			err = ferr
		}
	}
	for _, p := range b.live {
		if cerr := p.f.Close(); err == nil {
			err = cerr
		}
	}
	if cerr := b.packs.close(); err == nil {
		err = cerr
	}
	b.idle, b.live = nil, nil
	if cerr := b.db.Close(); err == nil {
		err = cerr
	}
	return err
}

type packStaged struct {
	d   castore.Digest
	loc chunkLoc
}

// pendingChunk is a committed chunk until a barrier indexes it; promised
// says a deferred put's Close returned counting on it.
type pendingChunk struct {
	loc      chunkLoc
	promised bool
}

type packTxn struct {
	b      *packBackend
	p      *packFile
	start  int64
	staged []packStaged
	seen   map[castore.Digest]bool
	// dedicated: the blob is large and gets a pack of its own; gap: a
	// chunk was found stored already and not written, so the pack does
	// not hold the whole blob.
	dedicated, gap bool
	// losses is the backend's count when the writer began.
	losses uint64
}

// largeBlob is the writer's hint, before the first chunk, that the blob
// is large: it then goes into a new pack of its own from offset 0, so the
// pack file is the blob and can back a FUSE passthrough.
func (t *packTxn) largeBlob() {
	if t.p == nil && len(t.staged) == 0 {
		t.dedicated = true
	}
}

func (t *packTxn) stageChunk(d castore.Digest, data []byte) error {
	if t.seen[d] {
		return nil
	}
	// A chunk committed by anyone, even if not yet durable, is not written
	// again: whoever needs it durable syncs, and a sync covers all commits.
	// Found, it is touched: a sweep keeps it until this writer is done.
	var ok bool
	var err error
	t.b.touch.Guard(func() {
		if ok, err = t.b.hasChunk(d); ok && err == nil {
			t.b.touch.Touch(d)
		}
	})
	if err != nil || ok {
		t.gap = t.gap || ok
		return err
	}
	if t.p == nil {
		var p *packFile
		var err error
		if t.dedicated {
			p, err = t.b.newPack(true)
		} else {
			p, err = t.b.acquire()
		}
		if err != nil {
			return err
		}
		t.p, t.start = p, p.end()
	}
	off, err := t.p.appendChunk(data)
	if err != nil {
		return fmt.Errorf("append to pack %d: %w", t.p.id, err)
	}
	if t.seen == nil {
		t.seen = map[castore.Digest]bool{}
	}
	t.seen[d] = true
	t.staged = append(t.staged, packStaged{d, chunkLoc{pack: t.p.id, off: off, size: int64(len(data))}})
	return nil
}

func (t *packTxn) commit(blob castore.Digest, manifest []castore.ChunkMeta, deferSync bool) error {
	b := t.b
	b.mu.Lock()
	if b.losses != t.losses {
		// Chunks this writer found committed and did not write may be
		// among those the failed flush forgot.
		err := b.lossErr
		b.mu.Unlock()
		t.abort()
		return err
	}
	for _, s := range t.staged {
		b.pendingChunks[s.d] = pendingChunk{loc: s.loc, promised: deferSync}
	}
	if deferSync {
		// Close is about to return counting on these chunks, and on the
		// ones of other writers still pending that this one did not write.
		promise := func(d castore.Digest) {
			if pc, ok := b.pendingChunks[d]; ok && !pc.promised {
				pc.promised = true
				b.pendingChunks[d] = pc
			}
		}
		if manifest == nil {
			promise(blob)
		}
		for _, c := range manifest {
			promise(c.Digest)
		}
	}
	if manifest != nil {
		b.pendingBlobs[blob] = manifest
	}
	if t.dedicated && !t.gap && t.p != nil && t.start == 0 && len(t.staged) > 0 {
		size := t.staged[len(t.staged)-1].loc.off + t.staged[len(t.staged)-1].loc.size
		if size == t.p.end() {
			b.pendingExtents[blob] = extent{pack: t.p.id, size: size}
		}
	}
	if t.p != nil {
		b.dirty[t.p] = struct{}{}
	}
	tooMany := len(b.pendingChunks) >= maxPendingChunks
	losses := b.losses
	b.mu.Unlock()
	if t.p != nil {
		b.release(t.p)
		t.p = nil
	}
	t.staged = nil
	if deferSync && !tooMany {
		return nil
	}
	if err := b.barrier.wait(struct{}{}); err != nil {
		return err
	}
	return b.checkKept(blob, losses)
}

// checkKept ends a synchronous commit whose barrier succeeded. A flush
// that failed after the commit (one that ran while the commit waited) may
// have forgotten the blob's chunks: then the blob must be durable anyway
// (another writer's), or the commit fails with that flush's error.
func (b *packBackend) checkKept(blob castore.Digest, losses uint64) error {
	b.mu.Lock()
	same, err := b.losses == losses, b.lossErr
	b.mu.Unlock()
	if same {
		return nil
	}
	if ok, herr := b.hasDurable(blob); herr != nil || ok {
		return herr
	}
	return err
}

// abort cuts the pack back to where this writer started; nobody else
// appends to it meanwhile.
func (t *packTxn) abort() {
	if t.p != nil {
		// On failure the bytes stay as unindexed garbage; nothing points
		// at them.
		_ = t.p.truncate(t.start)
		t.b.release(t.p)
		t.p = nil
	}
	t.staged = nil
}
