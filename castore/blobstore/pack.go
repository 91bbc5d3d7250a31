package blobstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/internal/boltdb"
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

	packChunksBucket = "chunks"
	packBlobsBucket  = "blobs"
	packMetaBucket   = "packs"
	// packExtentsBucket maps a blob to the pack that holds exactly its
	// bytes, from offset 0 (see packTxn.largeBlob).
	packExtentsBucket = "extents"
)

// NewPack opens (creating if needed) a pack store in a directory:
// packs/<n>.pack hold chunk bytes, index.db (bbolt) maps chunk digests to
// their place in a pack and blobs of more than one chunk to their chunk
// list. A chunk is indexed only after its pack was flushed to disk, so a
// crash leaves at most unreferenced bytes at the end of a pack.
func NewPack(root string) (*Store, error) {
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
		db:             db,
		files:          map[uint64]*os.File{},
		live:           map[uint64]*packFile{},
		pendingChunks:  map[castore.Digest]chunkLoc{},
		pendingBlobs:   map[castore.Digest][]castore.ChunkMeta{},
		pendingExtents: map[castore.Digest]extent{},
		dirty:          map[*packFile]struct{}{},
	}
	if b.nextPack, err = firstFreePack(db, filepath.Join(root, "packs")); err != nil {
		db.Close()
		return nil, fmt.Errorf("open pack store %s: %w", root, err)
	}
	b.barrier.flush = b.flush
	return newStore(b), nil
}

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

// chunkLoc is where a chunk's bytes are: pack number, offset, length.
type chunkLoc struct {
	pack uint64
	off  int64
	size int64
}

func (l chunkLoc) encode() []byte {
	buf := make([]byte, 0, 3*binary.MaxVarintLen64)
	buf = binary.AppendUvarint(buf, l.pack)
	buf = binary.AppendUvarint(buf, uint64(l.off))
	return binary.AppendUvarint(buf, uint64(l.size))
}

func decodeChunkLoc(b []byte) (chunkLoc, error) {
	var v [3]uint64
	for i := range v {
		x, n := binary.Uvarint(b)
		if n <= 0 {
			return chunkLoc{}, errors.New("corrupt chunk index entry")
		}
		v[i], b = x, b[n:]
	}
	if len(b) != 0 || v[1] > 1<<62 || v[2] > 1<<40 {
		return chunkLoc{}, errors.New("corrupt chunk index entry")
	}
	return chunkLoc{pack: v[0], off: int64(v[1]), size: int64(v[2])}, nil
}

// extent says a blob's bytes are exactly a pack file's: pack id and size.
type extent struct {
	pack uint64
	size int64
}

func (e extent) encode() []byte {
	return chunkLoc{pack: e.pack, size: e.size}.encode()
}

func decodeExtent(b []byte) (extent, error) {
	l, err := decodeChunkLoc(b)
	if err != nil || l.off != 0 {
		return extent{}, errors.New("corrupt extent index entry")
	}
	return extent{pack: l.pack, size: l.size}, nil
}

// packFile is a pack this process appends to. One writer holds it at a
// time, so a blob's chunks are contiguous. Appends collect in a buffer and
// reach the file a block at a time: a tree of small files would otherwise
// cost a write call per file. mu guards the buffer and the file's tail
// against readers and the barrier, which flush the buffer when they need
// its bytes in the file.
type packFile struct {
	id uint64
	f  *os.File
	// dedicated packs hold one large blob and are never reused.
	dedicated bool

	mu   sync.Mutex
	size int64  // logical size: file plus buffer
	buf  []byte // bytes from size-len(buf) on, not written yet
	// writeback is where the writeback started by the last kick ended,
	// lastStep how much that kick started.
	writeback, lastStep int64
}

// packBufSize is how much a pack collects before writing; chunks at least
// this large go straight to the file.
const packBufSize = 1 << 20

// writebackStep is how much a pack grows before its new bytes are handed
// to the disk. Left alone, the kernel holds an import's data in the page
// cache until the final flush and only then writes it all; started early,
// the writing overlaps the hashing and the flush finds little left to do
// (what RocksDB's bytes_per_sync does).
const writebackStep = 8 << 20

// appendChunk adds data at the end and returns its offset.
func (p *packFile) appendChunk(data []byte) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	off := p.size
	if len(p.buf)+len(data) > packBufSize {
		if err := p.flushLocked(); err != nil {
			return 0, err
		}
	}
	if len(data) >= packBufSize {
		if _, err := p.f.WriteAt(data, off); err != nil {
			return 0, err
		}
	} else {
		if p.buf == nil {
			p.buf = make([]byte, 0, packBufSize)
		}
		p.buf = append(p.buf, data...)
	}
	p.size += int64(len(data))
	p.kickWriteback()
	return off, nil
}

func (p *packFile) end() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.size
}

// flush writes the buffer, so everything appended so far is in the file.
func (p *packFile) flush() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.flushLocked()
}

func (p *packFile) flushLocked() error {
	if len(p.buf) == 0 {
		return nil
	}
	if _, err := p.f.WriteAt(p.buf, p.size-int64(len(p.buf))); err != nil {
		return err
	}
	p.buf = p.buf[:0]
	return nil
}

// truncate drops everything from off on (an aborted writer's chunks).
func (p *packFile) truncate(off int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if bufStart := p.size - int64(len(p.buf)); off >= bufStart {
		p.buf = p.buf[:off-bufStart]
		p.size = off
		return nil
	}
	if err := p.f.Truncate(off); err != nil {
		return err
	}
	p.buf, p.size = p.buf[:0], off
	p.writeback = min(p.writeback, off)
	p.lastStep = 0
	return nil
}

// startWriteback hands what was written since the last kick to the disk,
// without waiting.
func (p *packFile) startWriteback() {
	written := p.size - int64(len(p.buf))
	if written > p.writeback {
		unix.SyncFileRange(int(p.f.Fd()), p.writeback, written-p.writeback, unix.SYNC_FILE_RANGE_WRITE)
		p.lastStep = written - p.writeback
		p.writeback = written
	}
}

func (p *packFile) kickWriteback() {
	written := p.size - int64(len(p.buf))
	if written-p.writeback < writebackStep {
		return
	}
	fd := int(p.f.Fd())
	// Asynchronous: starts writeback of the range, waits for nothing.
	unix.SyncFileRange(fd, p.writeback, written-p.writeback, unix.SYNC_FILE_RANGE_WRITE)
	// The step before was handed to the disk one step ago: wait for it
	// (usually done by now) and drop its pages from the cache. Freshly
	// written pack bytes are rarely read back soon, and the pages freed
	// here are the ones the next appends fill: a write into recycled
	// pages costs a copy, one into pages the system has not touched for a
	// while costs much more on a VM whose host reclaims free memory (the
	// write path then spent more time copying than hashing).
	if prev := p.writeback - p.lastStep; p.lastStep > 0 && prev >= 0 {
		unix.SyncFileRange(fd, prev, p.lastStep, unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER)
		_ = unix.Fadvise(fd, prev, p.lastStep, unix.FADV_DONTNEED)
	}
	p.lastStep = written - p.writeback
	p.writeback = written
}

type packBackend struct {
	root string
	db   *boltdb.DB

	mu             sync.Mutex
	idle           []*packFile          // open for appending, held by no writer
	live           map[uint64]*packFile // packs this process appends to
	files          map[uint64]*os.File  // every pack opened, for reads
	pendingChunks  map[castore.Digest]chunkLoc
	pendingBlobs   map[castore.Digest][]castore.ChunkMeta
	pendingExtents map[castore.Digest]extent
	dirty          map[*packFile]struct{}
	closed         bool
	nextPack       uint64 // number of the next pack to create
	packsCreated   bool   // since the last barrier

	barrier barrier
}

func (b *packBackend) packPath(id uint64) string {
	return filepath.Join(b.root, "packs", fmt.Sprintf("%08d.pack", id))
}

// acquire hands a writer a pack of its own, a new one if none is idle.
// Packs written by an earlier process are never appended to: their tail may
// hold bytes of puts that a crash interrupted.
func (b *packBackend) acquire() (*packFile, error) {
	b.mu.Lock()
	if n := len(b.idle); n > 0 {
		p := b.idle[n-1]
		b.idle = b.idle[:n-1]
		b.mu.Unlock()
		return p, nil
	}
	b.mu.Unlock()
	return b.newPack(false)
}

// newPack creates an empty pack; a dedicated one takes one blob only.
// Packs are numbered from a counter in memory: recording each number
// durably cost a bbolt commit, an fdatasync, per pack (an import of many
// large files makes a pack per file). The next barrier records the
// highest number and makes the new packs' directory entries durable
// before any index entry points into them.
func (b *packBackend) newPack(dedicated bool) (*packFile, error) {
	b.mu.Lock()
	id := b.nextPack
	b.nextPack++
	b.packsCreated = true
	b.mu.Unlock()
	f, err := os.OpenFile(b.packPath(id), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create pack: %w", err)
	}
	p := &packFile{id: id, f: f, dedicated: dedicated}
	b.mu.Lock()
	b.files[id] = f
	b.live[id] = p
	b.mu.Unlock()
	return p, nil
}

func (b *packBackend) release(p *packFile) {
	if p.dedicated || p.end() >= packSealSize {
		// Sealed: no more appends, so its buffer goes (written first), and
		// the disk may start on its tail now rather than at the barrier
		// (an import seals a pack per large file; left alone, their tails
		// were all written by the final flush, one after the other).
		p.mu.Lock()
		if err := p.flushLocked(); err == nil {
			p.buf = nil
			p.startWriteback()
		}
		p.mu.Unlock()
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.idle = append(b.idle, p)
	}
}

func (b *packBackend) lookupChunk(d castore.Digest) (chunkLoc, bool, error) {
	b.mu.Lock()
	loc, ok := b.pendingChunks[d]
	b.mu.Unlock()
	if ok {
		return loc, true, nil
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

// file returns a pack's file for reading, its appended bytes all written.
func (b *packBackend) file(id uint64) (*os.File, error) {
	b.mu.Lock()
	if p, ok := b.live[id]; ok {
		b.mu.Unlock()
		if err := p.flush(); err != nil {
			return nil, fmt.Errorf("flush pack %d: %w", id, err)
		}
		return p.f, nil
	}
	defer b.mu.Unlock()
	if f, ok := b.files[id]; ok {
		return f, nil
	}
	if b.closed {
		return nil, errors.New("pack store closed")
	}
	f, err := os.Open(b.packPath(id))
	if err != nil {
		return nil, fmt.Errorf("open pack %d: %w", id, err)
	}
	b.files[id] = f
	return f, nil
}

func (b *packBackend) openChunk(d castore.Digest) (chunkReader, int64, error) {
	loc, ok, err := b.lookupChunk(d)
	if err != nil {
		return nil, 0, err
	}
	if !ok {
		return nil, 0, fmt.Errorf("chunk %s: %w", d, castore.ErrNotFound)
	}
	f, err := b.file(loc.pack)
	if err != nil {
		return nil, 0, fmt.Errorf("chunk %s: %w", d, err)
	}
	return fileChunk{io.NewSectionReader(f, loc.off, loc.size), f, loc.off}, loc.size, nil
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
	f, err := b.file(e.pack)
	if err != nil {
		return nil, 0, false
	}
	return f, e.size, true
}

// locate names the open pack file and the offset holding a chunk.
func (b *packBackend) locate(d castore.Digest) (*os.File, int64, int64, bool) {
	loc, ok, err := b.lookupChunk(d)
	if err != nil || !ok {
		return nil, 0, 0, false
	}
	f, err := b.file(loc.pack)
	if err != nil {
		return nil, 0, 0, false
	}
	return f, loc.off, loc.size, true
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

func encodeManifest(m []castore.ChunkMeta) []byte {
	resp := &castorev1.StatBlobResponse{}
	for _, c := range m {
		resp.Chunks = append(resp.Chunks, &castorev1.StatBlobResponse_ChunkMeta{Digest: c.Digest.Bytes(), Size: c.Size})
	}
	raw, _ := proto.Marshal(resp)
	return raw
}

func decodeManifest(d castore.Digest, raw []byte) ([]castore.ChunkMeta, bool, error) {
	var resp castorev1.StatBlobResponse
	if err := proto.Unmarshal(raw, &resp); err != nil {
		return nil, false, fmt.Errorf("manifest of %s: %w", d, err)
	}
	out := make([]castore.ChunkMeta, len(resp.GetChunks()))
	for i, c := range resp.GetChunks() {
		cd, err := castore.DigestFromBytes(c.GetDigest())
		if err != nil {
			return nil, false, fmt.Errorf("manifest of %s: chunk %d: %w", d, i, err)
		}
		out[i] = castore.ChunkMeta{Digest: cd, Size: c.GetSize()}
	}
	return out, true, nil
}

func (b *packBackend) newTxn() (txn, error) { return &packTxn{b: b}, nil }

func (b *packBackend) sync() error { return b.barrier.wait() }

// flush makes everything committed so far durable: the packs' data first,
// then the index entries that point into them, in one bbolt transaction.
func (b *packBackend) flush() error {
	b.mu.Lock()
	dirty := make([]*packFile, 0, len(b.dirty))
	for p := range b.dirty {
		dirty = append(dirty, p)
	}
	clear(b.dirty)
	chunks := make(map[castore.Digest]chunkLoc, len(b.pendingChunks))
	for d, l := range b.pendingChunks {
		chunks[d] = l
	}
	blobs := make(map[castore.Digest][]castore.ChunkMeta, len(b.pendingBlobs))
	for d, m := range b.pendingBlobs {
		blobs[d] = m
	}
	extents := maps.Clone(b.pendingExtents)
	created, lastPack := b.packsCreated, b.nextPack-1
	b.packsCreated = false
	b.mu.Unlock()
	if len(chunks) == 0 && len(blobs) == 0 {
		b.mu.Lock()
		b.packsCreated = b.packsCreated || created
		b.mu.Unlock()
		return nil
	}
	fail := func(err error) error {
		b.mu.Lock()
		for _, p := range dirty {
			b.dirty[p] = struct{}{}
		}
		b.packsCreated = b.packsCreated || created
		b.mu.Unlock()
		return err
	}
	// The packs' data goes to the disk while the index entries are put
	// in a transaction; it commits only once the data is durable.
	packsSynced := make(chan error, 1)
	go func() { packsSynced <- syncPacks(dirty, created, filepath.Join(b.root, "packs")) }()
	tx, err := b.db.Begin(true)
	if err != nil {
		<-packsSynced
		return fail(fmt.Errorf("commit chunk index: %w", err))
	}
	if err := putIndex(tx, lastPack, chunks, blobs, extents); err != nil {
		tx.Rollback()
		<-packsSynced
		return fail(fmt.Errorf("commit chunk index: %w", err))
	}
	if err := <-packsSynced; err != nil {
		tx.Rollback()
		return fail(err)
	}
	if err := tx.Commit(); err != nil {
		return fail(fmt.Errorf("commit chunk index: %w", err))
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

// syncPacks makes the packs' appended bytes durable, and with created
// the directory entries of packs made since the last barrier.
func syncPacks(dirty []*packFile, created bool, dir string) error {
	for _, p := range dirty {
		if err := p.flush(); err != nil {
			return fmt.Errorf("flush pack %d: %w", p.id, err)
		}
		if err := unix.Fdatasync(int(p.f.Fd())); err != nil {
			return fmt.Errorf("flush pack %d: %w", p.id, err)
		}
	}
	if created {
		if err := syncDir(dir); err != nil {
			return fmt.Errorf("flush pack directory: %w", err)
		}
	}
	return nil
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
	for _, f := range b.files {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	b.files, b.idle, b.live = nil, nil, nil
	if cerr := b.db.Close(); err == nil {
		err = cerr
	}
	return err
}

type packStaged struct {
	d   castore.Digest
	loc chunkLoc
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
	if ok, err := t.b.hasChunk(d); err != nil || ok {
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
	for _, s := range t.staged {
		b.pendingChunks[s.d] = s.loc
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
	b.mu.Unlock()
	if t.p != nil {
		b.release(t.p)
		t.p = nil
	}
	t.staged = nil
	if deferSync && !tooMany {
		return nil
	}
	return b.sync()
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

// barrier runs flush for whoever waits, one run at a time; callers that
// arrive while a run is going share the next one, so concurrent writers
// pay one flush per batch rather than one each.
type barrier struct {
	flush func() error

	mu      sync.Mutex
	waiters []chan error
	running bool
}

func (g *barrier) wait() error {
	ch := make(chan error, 1)
	g.mu.Lock()
	g.waiters = append(g.waiters, ch)
	if !g.running {
		g.running = true
		go g.loop()
	}
	g.mu.Unlock()
	return <-ch
}

func (g *barrier) loop() {
	for {
		g.mu.Lock()
		batch := g.waiters
		g.waiters = nil
		if len(batch) == 0 {
			g.running = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		err := g.flush()
		for _, ch := range batch {
			ch <- err
		}
	}
}
