package blobstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	bolt "go.etcd.io/bbolt"
	"lukechampine.com/blake3"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castoretest"
)

// faultFS is the real file system with faults that a test switches on and
// off: while an operation's fault is set, it fails with that error and
// records the pack it failed on.
type faultFS struct {
	osFS
	mu     sync.Mutex
	faults map[string]error // by operation: datasync, syncDir, finishWriteback
	failed map[string]bool  // base names of the files an operation failed on
}

func newFaultFS() *faultFS {
	return &faultFS{faults: map[string]error{}, failed: map[string]bool{}}
}

func (f *faultFS) set(op string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.faults, op)
		return
	}
	f.faults[op] = err
}

func (f *faultFS) fault(op, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	err := f.faults[op]
	if err != nil {
		f.failed[filepath.Base(name)] = true
	}
	return err
}

// failedPacks are the pack numbers an operation failed on.
func (f *faultFS) failedPacks() map[uint64]bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[uint64]bool{}
	for name := range f.failed {
		var id uint64
		if _, err := fmt.Sscanf(name, "%d.pack", &id); err == nil {
			out[id] = true
		}
	}
	return out
}

func (f *faultFS) datasync(file *os.File) error {
	if err := f.fault("datasync", file.Name()); err != nil {
		return fmt.Errorf("fdatasync: %w", err)
	}
	return f.osFS.datasync(file)
}

func (f *faultFS) syncDir(dir string) error {
	if err := f.fault("syncDir", dir); err != nil {
		return err
	}
	return f.osFS.syncDir(dir)
}

func (f *faultFS) finishWriteback(file *os.File, off, n int64) error {
	if err := f.fault("finishWriteback", file.Name()); err != nil {
		f.osFS.finishWriteback(file, off, n)
		return fmt.Errorf("sync_file_range: %w", err)
	}
	return f.osFS.finishWriteback(file, off, n)
}

func mustFaultyPack(t *testing.T, dir string, fsys packFS) *Store {
	t.Helper()
	s, err := newPackStore(dir, fsys)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// packIndex is what a pack store's index names.
type packIndex struct {
	chunks  map[castore.Digest]chunkLoc
	blobs   map[castore.Digest][]castore.ChunkMeta
	extents map[castore.Digest]extent
}

func readPackIndex(t *testing.T, s *Store) packIndex {
	t.Helper()
	b := s.b.(*packBackend)
	ix := packIndex{chunks: map[castore.Digest]chunkLoc{}, blobs: map[castore.Digest][]castore.ChunkMeta{}, extents: map[castore.Digest]extent{}}
	err := b.db.View(func(tx *bolt.Tx) error {
		if err := tx.Bucket([]byte(packChunksBucket)).ForEach(func(k, v []byte) error {
			l, err := decodeChunkLoc(v)
			ix.chunks[castore.Digest(k)] = l
			return err
		}); err != nil {
			return err
		}
		if err := tx.Bucket([]byte(packBlobsBucket)).ForEach(func(k, v []byte) error {
			m, _, err := decodeManifest(castore.Digest(k), v)
			ix.blobs[castore.Digest(k)] = m
			return err
		}); err != nil {
			return err
		}
		return tx.Bucket([]byte(packExtentsBucket)).ForEach(func(k, v []byte) error {
			e, err := decodeExtent(v)
			ix.extents[castore.Digest(k)] = e
			return err
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return ix
}

// names reports whether the index has any entry for blob or its chunks.
func (ix packIndex) names(blob castore.Digest, chunks []castore.ChunkMeta) bool {
	if _, ok := ix.chunks[blob]; ok {
		return true
	}
	if _, ok := ix.blobs[blob]; ok {
		return true
	}
	if _, ok := ix.extents[blob]; ok {
		return true
	}
	for _, c := range chunks {
		if _, ok := ix.chunks[c.Digest]; ok {
			return true
		}
	}
	return false
}

// checkConsistent opens the store in dir afresh and checks that every index
// entry holds: each chunk entry's bytes are in its pack and hash to its
// digest, each manifest's chunks are indexed, each extent is its blob; and
// that no entry points into a pack whose flush failed unless it was
// indexed before the failure (in before).
func checkConsistent(t *testing.T, dir string, before packIndex, failed map[uint64]bool) {
	t.Helper()
	s := mustPack(t, dir)
	defer s.Close()
	ix := readPackIndex(t, s)
	for d, l := range ix.chunks {
		if failed[l.pack] && before.chunks[d] != l {
			t.Errorf("chunk %s indexed in pack %d after that pack's flush failed", d, l.pack)
		}
		f, err := os.Open(s.b.(*packBackend).packPath(l.pack))
		if err != nil {
			t.Errorf("chunk %s: %v", d, err)
			continue
		}
		buf := make([]byte, l.size)
		_, err = f.ReadAt(buf, l.off)
		f.Close()
		if err != nil {
			t.Errorf("chunk %s at %+v: %v", d, l, err)
		} else if castore.Digest(blake3.Sum256(buf)) != d {
			t.Errorf("chunk %s at %+v holds other bytes", d, l)
		}
	}
	for d, m := range ix.blobs {
		for _, c := range m {
			if _, ok := ix.chunks[c.Digest]; !ok {
				t.Errorf("blob %s names chunk %s, which is not indexed", d, c.Digest)
			}
		}
	}
	for d, e := range ix.extents {
		if failed[e.pack] && before.extents[d] != e {
			t.Errorf("extent of %s indexed in pack %d after that pack's flush failed", d, e.pack)
		}
		if got := readAll(t, s, d); int64(len(got)) != e.size {
			t.Errorf("extent of %s says %d bytes, blob has %d", d, e.size, len(got))
		}
	}
}

// chunksOf is how the store cuts data.
func chunksOf(t *testing.T, data []byte) []castore.ChunkMeta {
	t.Helper()
	m := NewMemory()
	defer m.Close()
	d, err := castoretest.PutBlob(t, m, data, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := m.Chunks(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func wantInvisible(t *testing.T, s *Store, d castore.Digest, chunks []castore.ChunkMeta, what string) {
	t.Helper()
	ctx := context.Background()
	if ok, err := s.Has(ctx, d); ok || err != nil {
		t.Fatalf("%s: Has = %v, %v", what, ok, err)
	}
	if _, err := s.Open(ctx, d); !errors.Is(err, castore.ErrNotFound) {
		t.Fatalf("%s: Open = %v, want ErrNotFound", what, err)
	}
	if readPackIndex(t, s).names(d, chunks) {
		t.Fatalf("%s: the index names the blob or one of its chunks", what)
	}
}

func wantStored(t *testing.T, s *Store, d castore.Digest, data []byte, what string) {
	t.Helper()
	if ok, err := s.Has(context.Background(), d); !ok || err != nil {
		t.Fatalf("%s: Has = %v, %v", what, ok, err)
	}
	if !bytes.Equal(readAll(t, s, d), data) {
		t.Fatalf("%s: reads back wrong", what)
	}
}

// A put whose fdatasync fails returns an error naming it and leaves
// nothing visible, not even after a later flush succeeds: Linux may drop
// the pages of a failed writeback and a retried fdatasync then succeeds
// without them, so bytes a failed flush covered are never indexed. Once
// the fault is gone the same blob is written anew, and a reopened store
// indexes only bytes that were made durable.
func TestPackFailedDatasyncLeavesNothingVisible(t *testing.T) {
	dir := t.TempDir()
	ffs := newFaultFS()
	s := mustFaultyPack(t, dir, ffs)
	kept := randomBytes(20, 2<<20)
	dk, err := castoretest.PutBlob(t, s, kept, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	before := readPackIndex(t, s)

	data := randomBytes(21, 3<<20)
	chunks := chunksOf(t, data)
	d := castore.HashBlob(data)
	ffs.set("datasync", syscall.EIO)
	_, err = castoretest.PutBlob(t, s, data, 1<<16)
	if err == nil || !strings.Contains(err.Error(), "fdatasync") || !strings.Contains(err.Error(), "pack") || !errors.Is(err, syscall.EIO) {
		t.Fatalf("put with a failing fdatasync = %v, want an error naming fdatasync of a pack", err)
	}
	if len(ffs.failedPacks()) == 0 {
		t.Fatal("no pack's fdatasync failed")
	}
	wantInvisible(t, s, d, chunks, "after the failed put")
	wantStored(t, s, dk, kept, "blob stored before the fault")

	ffs.set("datasync", nil)
	if err := s.Sync(context.Background()); err != nil {
		t.Fatalf("sync after the fault cleared: %v", err)
	}
	wantInvisible(t, s, d, chunks, "after a flush that succeeded")
	if got, err := castoretest.PutBlob(t, s, data, 1<<16); err != nil || got != d {
		t.Fatalf("put again after the fault cleared = %s, %v", got, err)
	}
	wantStored(t, s, d, data, "blob put again")
	other := randomBytes(22, 500_000)
	do, err := castoretest.PutBlob(t, s, other, 1<<16, castore.WithDeferredSync())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(context.Background()); err != nil {
		t.Fatalf("sync of a new deferred blob: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkConsistent(t, dir, before, ffs.failedPacks())
	s = mustPack(t, dir)
	defer s.Close()
	wantStored(t, s, dk, kept, "first blob after reopen")
	wantStored(t, s, d, data, "blob put again, after reopen")
	wantStored(t, s, do, other, "deferred blob after reopen")
}

// When a flush fails, the deferred blobs (Close returned) with bytes in
// the pack it failed on are lost: Sync says so then and at every later
// call (it promises that every blob closed so far is durable, which no
// longer holds). Blobs in the other packs become durable at the next
// flush, and new puts work once the fault is gone. A reopened store starts
// clean.
func TestPackFailedDatasyncLosesDeferredBlobsLoudly(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	ffs := newFaultFS()
	s := mustFaultyPack(t, dir, ffs)
	type blob struct {
		d      castore.Digest
		data   []byte
		chunks []castore.ChunkMeta
		packs  map[uint64]bool // that hold its chunks
	}
	var deferred []blob
	// Small blobs share a pack, large ones (over a maximum chunk) get
	// their own.
	for i, size := range []int{100_000, 300_000, 2 << 20, 3 << 20, 4000} {
		data := randomBytes(uint64(30+i), size)
		d, err := castoretest.PutBlob(t, s, data, 1<<16, castore.WithDeferredSync())
		if err != nil {
			t.Fatal(err)
		}
		b := blob{d, data, chunksOf(t, data), map[uint64]bool{}}
		for _, c := range append(b.chunks, castore.ChunkMeta{Digest: d}) {
			if l, ok, _ := s.b.(*packBackend).lookupChunk(c.Digest); ok {
				b.packs[l.pack] = true
			}
		}
		deferred = append(deferred, b)
	}
	ffs.set("datasync", syscall.EIO)
	if err := s.Sync(ctx); err == nil || !strings.Contains(err.Error(), "fdatasync") {
		t.Fatalf("sync with a failing fdatasync = %v, want an error naming fdatasync", err)
	}
	ffs.set("datasync", nil)
	failed := ffs.failedPacks()
	lost := func(b blob) bool {
		for p := range b.packs {
			if failed[p] {
				return true
			}
		}
		return false
	}
	nlost := 0
	for i, b := range deferred {
		if lost(b) {
			nlost++
			wantInvisible(t, s, b.d, b.chunks, fmt.Sprintf("deferred blob %d", i))
		}
	}
	if nlost == 0 {
		t.Fatalf("no deferred blob in the failed packs %v", failed)
	}
	if err := s.Sync(ctx); err == nil || !strings.Contains(err.Error(), "lost") || !strings.Contains(err.Error(), "fdatasync") {
		t.Fatalf("sync after deferred blobs were lost = %v, want an error saying they were lost, and why", err)
	}
	for i, b := range deferred {
		if lost(b) {
			wantInvisible(t, s, b.d, b.chunks, fmt.Sprintf("lost deferred blob %d after a later flush", i))
		} else {
			wantStored(t, s, b.d, b.data, fmt.Sprintf("deferred blob %d in a pack that flushed", i))
		}
	}
	data := randomBytes(40, 3<<20)
	d, err := castoretest.PutBlob(t, s, data, 1<<16)
	if err != nil {
		t.Fatalf("put after the fault cleared: %v", err)
	}
	wantStored(t, s, d, data, "blob put after the fault")
	if err := s.Close(); err == nil || !strings.Contains(err.Error(), "lost") {
		t.Fatalf("close after deferred blobs were lost = %v, want an error saying they were lost", err)
	}
	checkConsistent(t, dir, packIndex{}, ffs.failedPacks())
	s = mustPack(t, dir)
	defer s.Close()
	wantStored(t, s, d, data, "blob put after the fault, after reopen")
	for i, b := range deferred {
		if lost(b) {
			wantInvisible(t, s, b.d, b.chunks, fmt.Sprintf("lost deferred blob %d after reopen", i))
		} else {
			wantStored(t, s, b.d, b.data, fmt.Sprintf("deferred blob %d after reopen", i))
		}
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatalf("sync of a reopened store: %v", err)
	}
}

// A writer that found a chunk committed but not yet durable does not write
// it again; if a failed flush then forgets that chunk, the writer's Close
// fails rather than name a chunk nothing holds.
func TestPackFailedDatasyncFailsWritersThatReliedOnLostChunks(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	ffs := newFaultFS()
	s := mustFaultyPack(t, dir, ffs)
	shared := randomBytes(50, 3<<20)
	if _, err := castoretest.PutBlob(t, s, shared, 1<<16, castore.WithDeferredSync()); err != nil {
		t.Fatal(err)
	}
	data := append(bytes.Clone(shared), randomBytes(51, 2<<20)...)
	w, err := s.Put(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data[:4<<20]); err != nil { // stages the shared chunks
		t.Fatal(err)
	}
	ffs.set("datasync", syscall.EIO)
	if err := s.Sync(ctx); err == nil {
		t.Fatal("sync with a failing fdatasync succeeded")
	}
	ffs.set("datasync", nil)
	if _, err := w.Write(data[4<<20:]); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Close(); err == nil || !strings.Contains(err.Error(), "fdatasync") {
		t.Fatalf("close of a writer that relied on lost chunks = %v, want the flush's error", err)
	}
	d := castore.HashBlob(data)
	wantInvisible(t, s, d, nil, "blob of the failed writer")
	if got, err := castoretest.PutBlob(t, s, data, 1<<16); err != nil || got != d {
		t.Fatalf("put again = %s, %v", got, err)
	}
	wantStored(t, s, d, data, "blob put again")
	s.Close()
	checkConsistent(t, dir, packIndex{}, ffs.failedPacks())
}

// A failed sync of the packs directory (the new packs' names) is a failed
// flush like a failed fdatasync: nothing in the new packs is indexed.
func TestPackFailedDirSyncLeavesNothingVisible(t *testing.T) {
	dir := t.TempDir()
	ffs := newFaultFS()
	s := mustFaultyPack(t, dir, ffs)
	data := randomBytes(60, 3<<20)
	d := castore.HashBlob(data)
	ffs.set("syncDir", syscall.EIO)
	if _, err := castoretest.PutBlob(t, s, data, 1<<16); err == nil || !strings.Contains(err.Error(), "pack directory") || !errors.Is(err, syscall.EIO) {
		t.Fatalf("put with a failing directory sync = %v, want an error naming the pack directory", err)
	}
	wantInvisible(t, s, d, chunksOf(t, data), "after the failed put")
	packs := packSizes(t, dir)
	ffs.set("syncDir", nil)
	if got, err := castoretest.PutBlob(t, s, data, 1<<16); err != nil || got != d {
		t.Fatalf("put again after the fault cleared = %s, %v", got, err)
	}
	wantStored(t, s, d, data, "blob put again")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	failed := map[uint64]bool{}
	for name := range packs {
		var id uint64
		fmt.Sscanf(name, "%d.pack", &id)
		failed[id] = true
	}
	checkConsistent(t, dir, packIndex{}, failed)
}

// The writeback started while a pack grows is waited for later; a failure
// there is a lost write like a failed fdatasync (and must be reported at
// the flush: the wait consumes the error, so the fdatasync would not see
// it).
func TestPackFailedWritebackReportedAtFlush(t *testing.T) {
	dir := t.TempDir()
	ffs := newFaultFS()
	s := mustFaultyPack(t, dir, ffs)
	// Two writeback steps: the second kick waits for the first.
	data := make([]byte, 2*writebackStep+3<<20)
	rand.NewChaCha8([32]byte{70}).Read(data)
	d := castore.HashBlob(data)
	ffs.set("finishWriteback", syscall.EIO)
	if _, err := castoretest.PutBlob(t, s, data, 1<<20); err == nil || !strings.Contains(err.Error(), "sync_file_range") || !errors.Is(err, syscall.EIO) {
		t.Fatalf("put with a failing writeback = %v, want an error naming sync_file_range", err)
	}
	ffs.set("finishWriteback", nil)
	wantInvisible(t, s, d, chunksOf(t, data), "after the failed put")
	if got, err := castoretest.PutBlob(t, s, data, 1<<20); err != nil || got != d {
		t.Fatalf("put again after the fault cleared = %s, %v", got, err)
	}
	wantStored(t, s, d, data, "blob put again")
	s.Close()
	checkConsistent(t, dir, packIndex{}, ffs.failedPacks())
}
