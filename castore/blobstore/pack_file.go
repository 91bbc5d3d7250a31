package blobstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// packFile is a pack this process appends to. One writer holds it at a
// time, so a blob's chunks are contiguous. Appends collect in a buffer and
// reach the file a block at a time: a tree of small files would otherwise
// cost a write call per file. mu guards the buffer and the file's tail
// against readers and the barrier, which flush the buffer when they need
// its bytes in the file.
type packFile struct {
	id uint64
	f  *os.File
	fs packFS
	// dedicated packs hold one large blob and are never reused.
	dedicated bool

	mu   sync.Mutex
	size int64  // logical size: file plus buffer
	buf  []byte // bytes from size-len(buf) on, not written yet
	// writeback is where the writeback started by the last kick ended,
	// lastStep how much that kick started.
	writeback, lastStep int64
	// writebackErr is the first failed wait for a writeback: the bytes may
	// not be on the disk, and the wait consumed the error, so the next
	// fdatasync would not report it.
	writebackErr error

	// lost, guarded by packBackend.mu, is why a flush could not make this
	// pack's bytes durable; the pack then takes no more writers.
	lost error
	// sealed (no more appends) and syncing (a flush is making it durable),
	// guarded by packBackend.mu, say when f may be closed (retireLocked).
	sealed, syncing bool
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
		if err := p.fs.writeAt(p.f, data, off); err != nil {
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
	if err := p.fs.writeAt(p.f, p.buf, p.size-int64(len(p.buf))); err != nil {
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
	if err := p.fs.truncate(p.f, off); err != nil {
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
		p.fs.startWriteback(p.f, p.writeback, written-p.writeback)
		p.lastStep = written - p.writeback
		p.writeback = written
	}
}

func (p *packFile) kickWriteback() {
	written := p.size - int64(len(p.buf))
	if written-p.writeback < writebackStep {
		return
	}
	p.fs.startWriteback(p.f, p.writeback, written-p.writeback)
	// The step before was handed to the disk one step ago: wait for it
	// (usually done by now) and drop its pages from the cache. Freshly
	// written pack bytes are rarely read back soon, and the pages freed
	// here are the ones the next appends fill: a write into recycled
	// pages costs a copy, one into pages the system has not touched for a
	// while costs much more on a VM whose host reclaims free memory (the
	// write path then spent more time copying than hashing).
	if prev := p.writeback - p.lastStep; p.lastStep > 0 && prev >= 0 {
		if err := p.fs.finishWriteback(p.f, prev, p.lastStep); err != nil && p.writebackErr == nil {
			p.writebackErr = fmt.Errorf("writeback of bytes %d-%d: %w", prev, prev+p.lastStep, err)
		}
	}
	p.lastStep = written - p.writeback
	p.writeback = written
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
	b.creating[id] = true
	b.mu.Unlock()
	f, err := b.fs.create(b.packPath(id))
	if err != nil {
		b.mu.Lock()
		delete(b.creating, id)
		b.mu.Unlock()
		return nil, fmt.Errorf("create pack: %w", err)
	}
	p := &packFile{id: id, f: f, fs: b.fs, dedicated: dedicated}
	b.mu.Lock()
	delete(b.creating, id)
	b.live[id] = p
	// Only now: a barrier that syncs the directory before the file exists
	// would not make its name durable.
	b.created = append(b.created, p)
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
		b.mu.Lock()
		p.sealed = true
		b.retireLocked(p)
		b.mu.Unlock()
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed && p.lost == nil {
		b.idle = append(b.idle, p)
	}
}

// file returns a pack's file for reading, its appended bytes all written;
// the caller gives it back with b.packs.release.
func (b *packBackend) file(id uint64) (*packRef, error) {
	b.mu.Lock()
	p, live := b.live[id]
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return nil, errors.New("pack store closed")
	}
	if live {
		if err := p.flush(); err != nil {
			return nil, fmt.Errorf("flush pack %d: %w", id, err)
		}
	}
	ref, err := b.packs.acquire(id)
	if err != nil {
		return nil, fmt.Errorf("open pack %d: %w", id, err)
	}
	return ref, nil
}

// retireLocked closes the appending descriptor of a sealed pack whose
// bytes are all durable: nothing writes or syncs it any more, and readers
// open it through b.packs. b.mu is held.
func (b *packBackend) retireLocked(p *packFile) {
	if !p.sealed || p.syncing || p.lost != nil || b.live[p.id] != p {
		return
	}
	if _, dirty := b.dirty[p]; dirty {
		return
	}
	delete(b.live, p.id)
	p.f.Close()
}

// syncPacks makes the dirty packs' appended bytes durable, and the
// directory entries of the packs created since the last barrier. On
// failure it names the packs whose bytes it cannot vouch for: the one
// whose write or sync failed, or with the directory every created one.
func syncPacks(fsys packFS, dirty, created []*packFile, dir string) (lost []*packFile, err error) {
	for _, p := range dirty {
		if err := p.syncData(fsys); err != nil {
			return []*packFile{p}, fmt.Errorf("flush pack %d: %w", p.id, err)
		}
	}
	if len(created) > 0 {
		if err := fsys.syncDir(dir); err != nil {
			return created, fmt.Errorf("flush pack directory: %w", err)
		}
	}
	return nil, nil
}

// syncData writes the buffer and makes the pack's bytes durable.
func (p *packFile) syncData(fsys packFS) error {
	p.mu.Lock()
	err := p.flushLocked()
	if err == nil {
		err = p.writebackErr
	}
	p.mu.Unlock()
	if err != nil {
		return err
	}
	return fsys.datasync(p.f)
}
