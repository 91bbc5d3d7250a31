package blobstore

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/internal/touchlog"
)

// NewMemory returns a chunking BlobService that keeps everything in memory.
//
// The chunks live back to back in anonymous memory files (memfd), not on
// the Go heap:
//   - the collector neither scans them nor paces itself by them (with the
//     data on the heap, a 1 GB store let the heap grow to 2 GB before the
//     next collection);
//   - the kernel fills fresh pages as it copies a write into them, where a
//     heap slab is first zeroed by a page fault and then copied into. On
//     the shared VM of docs/benchmarks-castore.md a user page fault costs
//     microseconds, and 1 GiB took 1.5–2.5 s to fault in (huge pages or
//     not) against 0.2–0.7 s to write into a memfd;
//   - readers get file ranges, so a FUSE mount splices chunks to the
//     kernel as it does from pack files (castore.FileRanger).
//
// The memory is the kernel's shared memory (Shmem in /proc/meminfo,
// charged to the process's cgroup), not part of the process's RSS: keep
// that in mind when reading a memory:// process's RSS.
//
// Each writer appends to a file no other writer holds: a write to a
// shared-memory file takes the file's lock, and concurrent writers of one
// file spent their time spinning on it.
func NewMemory() *Store {
	return newStore(&memBackend{
		chunks:    map[castore.Digest]memExtent{},
		manifests: map[castore.Digest][]castore.ChunkMeta{},
	})
}

// newMemoryFile makes an anonymous memory file, or where memfd_create is
// refused an unlinked temporary file.
func newMemoryFile() (*os.File, error) {
	fd, err := unix.MemfdCreate("tvix-blobs", unix.MFD_CLOEXEC)
	if err == nil {
		return os.NewFile(uintptr(fd), "memfd:tvix-blobs"), nil
	}
	f, terr := os.CreateTemp("", "tvix-blobs-*")
	if terr != nil {
		return nil, fmt.Errorf("memory blob store: memfd_create: %v; temporary file: %w", err, terr)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("memory blob store: unlink %s: %w", f.Name(), err)
	}
	return f, nil
}

// memFile is one memory file and its append offset, which only the
// writer holding the file moves.
type memFile struct {
	f   *os.File
	end int64
}

type memExtent struct {
	file      *memFile
	off, size int64
}

type memBackend struct {
	mu        sync.RWMutex
	chunks    map[castore.Digest]memExtent
	manifests map[castore.Digest][]castore.ChunkMeta
	files     []*memFile // all, for close
	idle      []*memFile // not held by a writer
	closed    bool
	touch     *touchlog.Log
}

func (m *memBackend) hasChunk(d castore.Digest) (bool, error) {
	_, ok := m.lookup(d)
	return ok, nil
}

func (m *memBackend) lookup(d castore.Digest) (memExtent, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	e, ok := m.chunks[d]
	return e, ok
}

func (m *memBackend) openChunk(d castore.Digest) (chunkReader, int64, error) {
	e, ok := m.lookup(d)
	if !ok {
		return nil, 0, fmt.Errorf("chunk %s: %w", d, castore.ErrNotFound)
	}
	return fileChunk{SectionReader: io.NewSectionReader(e.file.f, e.off, e.size), f: e.file.f, off: e.off}, e.size, nil
}

func (m *memBackend) locate(d castore.Digest) (*os.File, int64, int64, func(), bool) {
	e, ok := m.lookup(d)
	if !ok {
		return nil, 0, 0, nil, false
	}
	return e.file.f, e.off, e.size, nil, true
}

func (m *memBackend) manifest(d castore.Digest) ([]castore.ChunkMeta, bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	c, ok := m.manifests[d]
	return c, ok, nil
}

func (m *memBackend) newTxn() (txn, error) {
	return &memTxn{m: m, staged: map[castore.Digest]memExtent{}}, nil
}

// hold takes an idle file for a writer, making one if none is idle (so
// there are at most as many files as writers ever ran at once).
func (m *memBackend) hold() (*memFile, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errors.New("memory blob store is closed")
	}
	if n := len(m.idle); n > 0 {
		f := m.idle[n-1]
		m.idle = m.idle[:n-1]
		return f, nil
	}
	f, err := newMemoryFile()
	if err != nil {
		return nil, err
	}
	mf := &memFile{f: f}
	m.files = append(m.files, mf)
	return mf, nil
}

// close releases the memory; readers still open fail from then on.
func (m *memBackend) close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	var errs []error
	for _, f := range m.files {
		errs = append(errs, f.f.Close())
	}
	m.files, m.idle = nil, nil
	return errors.Join(errs...)
}

// release frees the memory under a range nobody will read (an aborted or
// duplicate chunk). Only whole pages inside it are freed, so a
// neighbour's bytes are never touched.
func (e memExtent) release() {
	const page = 4096
	beg := (e.off + page - 1) &^ (page - 1)
	end := (e.off + e.size) &^ (page - 1)
	if end > beg {
		// Failing only keeps the memory until the store is closed.
		_ = unix.Fallocate(int(e.file.f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, beg, end-beg)
	}
}

type memTxn struct {
	m      *memBackend
	file   *memFile // held from the first chunk until commit or abort
	staged map[castore.Digest]memExtent
}

func (t *memTxn) stageChunk(d castore.Digest, data []byte) error {
	var found bool
	t.m.touch.Guard(func() {
		if found, _ = t.m.hasChunk(d); found {
			t.m.touch.Touch(d)
		}
	})
	if found {
		return nil
	}
	if _, ok := t.staged[d]; ok {
		return nil
	}
	if t.file == nil {
		f, err := t.m.hold()
		if err != nil {
			return fmt.Errorf("store chunk %s in memory: %w", d, err)
		}
		t.file = f
	}
	e := memExtent{file: t.file, off: t.file.end, size: int64(len(data))}
	if _, err := t.file.f.WriteAt(data, e.off); err != nil {
		e.release()
		return fmt.Errorf("store chunk %s in memory: %w", d, err)
	}
	t.file.end += e.size
	t.staged[d] = e
	return nil
}

// letGo returns the held file to the idle list.
func (t *memTxn) letGo() {
	if t.file == nil {
		return
	}
	t.m.mu.Lock()
	if !t.m.closed {
		t.m.idle = append(t.m.idle, t.file)
	}
	t.m.mu.Unlock()
	t.file = nil
}

func (t *memTxn) commit(blob castore.Digest, manifest []castore.ChunkMeta, _ bool) error {
	t.m.mu.Lock()
	if t.m.closed {
		t.m.mu.Unlock()
		return errors.New("commit blob: memory blob store is closed")
	}
	var lost []memExtent // chunks another writer committed first
	for d, e := range t.staged {
		if _, ok := t.m.chunks[d]; ok {
			lost = append(lost, e)
			continue
		}
		t.m.chunks[d] = e
	}
	if manifest != nil {
		t.m.manifests[blob] = append([]castore.ChunkMeta(nil), manifest...)
	}
	t.m.mu.Unlock()
	for _, e := range lost {
		e.release()
	}
	t.staged = nil
	t.letGo()
	return nil
}

func (t *memTxn) abort() {
	for _, e := range t.staged {
		e.release()
	}
	t.staged = nil
	t.letGo()
}
