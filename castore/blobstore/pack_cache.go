package blobstore

import (
	"container/list"
	"errors"
	"os"
	"sync"
	"syscall"
)

// maxOpenPacks bounds the pack files kept open for reading. Every large
// blob gets a pack of its own, so a store has thousands; kept open all,
// they took the process past its descriptor limit, and then every upload
// and every accept failed. A variable so tests can make it small.
var maxOpenPacks = 256

// packCache opens pack files for reading, keeps up to max of them open
// while nobody uses them, and closes the least recently used beyond that.
// A file is never closed while held: a reader may have handed its
// descriptor to the kernel (splice to the FUSE device, passthrough) and a
// closed descriptor's number can be reused for another file, whose bytes
// the kernel would then send instead.
type packCache struct {
	open func(id uint64) (*os.File, error)

	mu      sync.Mutex
	max     int
	entries map[uint64]*packRef
	idle    list.List // of *packRef held by nobody, most recently used first
	closed  bool
}

// packRef is one open pack file and how many hold it.
type packRef struct {
	id   uint64
	f    *os.File
	refs int
	elem *list.Element // in idle, when refs == 0
	// gone: the pack was removed (garbage collection); the file closes
	// when its last holder lets go, and a new acquire opens it afresh.
	gone bool
}

func newPackCache(max int, open func(uint64) (*os.File, error)) *packCache {
	return &packCache{open: open, max: max, entries: map[uint64]*packRef{}}
}

var errPackStoreClosed = errors.New("pack store closed")

// acquire returns pack id open; the caller gives it back with release.
func (c *packCache) acquire(id uint64) (*packRef, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, errPackStoreClosed
	}
	if r, ok := c.entries[id]; ok {
		c.holdLocked(r)
		c.mu.Unlock()
		return r, nil
	}
	c.mu.Unlock()
	f, err := c.open(id)
	if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
		// Out of descriptors: give back every idle one and try again.
		c.mu.Lock()
		c.evictLocked(0)
		c.mu.Unlock()
		f, err = c.open(id)
	}
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		f.Close()
		return nil, errPackStoreClosed
	}
	if r, ok := c.entries[id]; ok {
		// Opened meanwhile by another reader.
		f.Close()
		c.holdLocked(r)
		return r, nil
	}
	r := &packRef{id: id, f: f, refs: 1}
	c.entries[id] = r
	c.evictLocked(c.max)
	return r, nil
}

func (c *packCache) holdLocked(r *packRef) {
	if r.refs == 0 && r.elem != nil {
		c.idle.Remove(r.elem)
		r.elem = nil
	}
	r.refs++
}

// release gives back what acquire returned.
func (c *packCache) release(r *packRef) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r.refs--
	if r.refs > 0 {
		return
	}
	if c.closed || r.gone {
		r.f.Close()
		return
	}
	r.elem = c.idle.PushFront(r)
	c.evictLocked(c.max)
}

// evictLocked closes idle files, least recently used first, until at most
// keep files are open (held ones are never closed, so more may stay).
func (c *packCache) evictLocked(keep int) {
	for len(c.entries) > keep && c.idle.Len() > 0 {
		r := c.idle.Remove(c.idle.Back()).(*packRef)
		r.elem = nil
		delete(c.entries, r.id)
		r.f.Close()
	}
}

// forget drops a removed pack: closed now if nobody holds it, else when
// the last holder releases it. Holders keep reading the unlinked file.
func (c *packCache) forget(id uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.entries[id]
	if !ok {
		return
	}
	delete(c.entries, id)
	if r.refs == 0 {
		if r.elem != nil {
			c.idle.Remove(r.elem)
			r.elem = nil
		}
		r.f.Close()
		return
	}
	r.gone = true
}

// openCount is how many pack files are open for reading.
func (c *packCache) openCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// close closes the idle files at once and held ones as they are released.
func (c *packCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	var err error
	for id, r := range c.entries {
		if r.refs == 0 {
			if cerr := r.f.Close(); err == nil {
				err = cerr
			}
		}
		delete(c.entries, id)
	}
	c.idle.Init()
	return err
}
