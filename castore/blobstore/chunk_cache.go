package blobstore

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/internal/meminfo"
)

// chunkCache keeps chunks in memory whose bytes were hashed to their
// digest as they were read from disk, so serving them again neither reads
// nor hashes them. What it holds was verified once, in memory that nothing
// but this process writes: a byte changed on disk afterwards does not
// reach it, and one changed before was refused on the way in. It is
// bounded by bytes; eviction is CLOCK (a chunk used since the hand last
// passed gets a second chance) and admission compares how often the
// candidate and the victims were asked for (as TinyLFU does), so a scan
// through more than the cache holds (every NAR of a large closure, in
// turn) keeps the part it has instead of replacing all of it each pass.
//
// Chunks of offHeapMin bytes or more live in memory mapped for each (off
// the Go heap: the collector would let a heap holding the cache grow to
// twice its size before collecting, and the cache is most of the heap of
// a server using it). Such memory is given back when nobody holds it: an
// entry is held by the cache while cached and by each reader using its
// bytes (get to release), so an eviction never unmaps bytes a reader, or
// the kernel in a write, is still using.
type chunkCache struct {
	max int64

	// limit is what the cache may hold now: max, or less while the
	// system is short of memory (adapt); anonymous memory is not the
	// kernel's to reclaim, as the page cache is, so the cache gives it.
	limit int64
	stop  chan struct{} // closed by drop: ends watchMemory

	mu      sync.Mutex
	used    int64
	entries map[castore.Digest]*cachedChunk
	ring    []*cachedChunk // CLOCK order
	hand    int
	// freq counts requests per digest, cached or not, halved every
	// agingPeriod requests so that what was popular long ago yields.
	freq     map[castore.Digest]uint8
	requests int
	dropped  bool // replaced: keeps nothing more (readers opened before may still ask)
}

type cachedChunk struct {
	d    castore.Digest
	data []byte
	used bool // asked for since the hand last passed
	at   int  // index in ring
	// refs counts the readers holding data; out is set once the cache
	// no longer does. Both under the cache's mu.
	refs   int
	out    bool
	mapped bool // data is a mapping of its own (allocChunk)
}

// offHeapMin is the smallest chunk kept off the Go heap: below it the
// page rounding would waste too much, and such chunks are few of the bytes.
const offHeapMin = 32 << 10

// allocChunk returns a buffer for a chunk of size bytes, and whether it
// is a mapping; freeChunk gives it back.
func allocChunk(size int64) ([]byte, bool) {
	if size >= offHeapMin {
		page := int64(unix.Getpagesize())
		if b, err := unix.Mmap(-1, 0, int((size+page-1)&^(page-1)), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS); err == nil {
			return b[:size], true
		}
	}
	return make([]byte, size), false // the heap, also when mapping fails
}

func freeChunk(b []byte, mapped bool) {
	if mapped {
		_ = unix.Munmap(b[:cap(b)]) // fails only for a range not mapped
	}
}

// chunkOverhead is what an entry costs beside its bytes (map slot, entry,
// frequency count), so that many tiny chunks are bounded too.
const chunkOverhead = 160

func newChunkCache(max int64) *chunkCache {
	return &chunkCache{max: max, limit: max, stop: make(chan struct{}), entries: map[castore.Digest]*cachedChunk{}, freq: map[castore.Digest]uint8{}}
}

// memoryCheck is how often a cache looks at the system's free memory.
const memoryCheck = 2 * time.Second

// watchMemory adapts the cache to the system's memory until drop.
func (c *chunkCache) watchMemory() {
	t := time.NewTicker(memoryCheck)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		m, err := meminfo.Read()
		if err != nil {
			return // not Linux: the bound stays as configured
		}
		c.adapt(m)
	}
}

// minUnderPressure is the least a cache keeps while memory is short: the
// chunks of the NARs being served right now.
const minUnderPressure = 64 << 20

// adapt halves what the cache holds while less than a sixteenth of the
// memory the process may use is available, and lets it grow back
// (doubling its bound, up to the configured one, at each check) once more
// than a quarter is.
func (c *chunkCache) adapt(m meminfo.Memory) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case m.Available < m.Total/16:
		c.limit = min(c.limit, max(c.used/2, minUnderPressure))
		for c.used > c.limit && len(c.ring) > 0 {
			c.hand %= len(c.ring)
			c.removeLocked(c.ring[c.hand])
		}
	case m.Available > m.Total/4 && c.limit < c.max:
		c.limit = min(c.max, c.limit*2)
	}
}

func (c *chunkCache) cost(size int64) int64 { return size + chunkOverhead }

// get returns chunk d's entry, held for the caller (release it), if
// cached. A request counts for admission when count is set: a reader asks
// once per chunk, however many ways it looks (a range, a read, again).
func (c *chunkCache) get(d castore.Digest, count bool) (*cachedChunk, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if count {
		c.countLocked(d)
	}
	e, ok := c.entries[d]
	if !ok {
		return nil, false
	}
	e.used = true
	e.refs++
	return e, true
}

// release gives back a hold of e from get or add.
func (c *chunkCache) release(e *cachedChunk) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.releaseLocked(e)
}

func (c *chunkCache) releaseLocked(e *cachedChunk) {
	if e.refs--; e.refs == 0 && e.out {
		freeChunk(e.data, e.mapped)
		e.data = nil
	}
}

// agingPeriod is how many requests pass between halvings of the counts:
// a few times what the cache can hold in typical chunks.
func (c *chunkCache) agingPeriod() int { return max(4096, int(4*c.max/(64<<10))) }

func (c *chunkCache) countLocked(d castore.Digest) {
	if f := c.freq[d]; f < 255 {
		c.freq[d] = f + 1
	}
	if c.requests++; c.requests >= c.agingPeriod() {
		c.requests = 0
		for k, f := range c.freq {
			if f /= 2; f == 0 {
				delete(c.freq, k)
			} else {
				c.freq[k] = f
			}
		}
	}
}

// admits says whether a chunk of size bytes not held now would be kept if
// it were read: there is room, or enough entries are asked for less often
// (victimsLocked). The caller reads and verifies it into its own buffer
// only then.
func (c *chunkCache) admits(d castore.Digest, size int64) bool {
	if c.cost(size) > c.max/8 {
		return false // one chunk must not flush a good part of the cache
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.victimsLocked(c.cost(size), c.freq[d])
	return ok
}

// victimsLocked chooses the entries to evict for cost more bytes, going
// the hand's way: the hand first passes the entries used since it last
// did (their second chance, taken now), then the entries it meets are the
// victims, each only if it is asked for less often than want; one that is
// not refuses the newcomer. At most victimSearch entries are looked at:
// a miss must not cost a walk through the whole cache.
func (c *chunkCache) victimsLocked(cost int64, want uint8) ([]*cachedChunk, bool) {
	need := c.used + cost - c.limit
	if need <= 0 {
		return nil, true
	}
	n := len(c.ring)
	for i := 0; i < min(n, victimSearch) && c.ring[c.hand%n].used; i++ {
		c.ring[c.hand%n].used = false
		c.hand++
	}
	c.hand %= n
	var victims []*cachedChunk
	for i := 0; need > 0 && i < min(n, victimSearch); i++ {
		e := c.ring[(c.hand+i)%n]
		if e.used {
			continue
		}
		if c.freq[e.d] >= want {
			return nil, false
		}
		victims = append(victims, e)
		need -= c.cost(int64(len(e.data)))
	}
	return victims, need <= 0
}

// victimSearch bounds the entries victimsLocked looks at.
const victimSearch = 64

// add keeps data (from allocChunk), verified to hash to d, if
// victimsLocked makes room. Either way it returns an entry of data held
// for the caller: one not cached is freed when released.
func (c *chunkCache) add(d castore.Digest, data []byte, mapped bool) *cachedChunk {
	cost := c.cost(int64(len(data)))
	c.mu.Lock()
	defer c.mu.Unlock()
	e := &cachedChunk{d: d, data: data, refs: 1, out: true, mapped: mapped}
	if _, ok := c.entries[d]; ok || cost > c.max/8 || c.dropped {
		return e
	}
	victims, ok := c.victimsLocked(cost, c.freq[d])
	if !ok {
		return e
	}
	for _, v := range victims {
		c.removeLocked(v)
	}
	e.out, e.at = false, len(c.ring)
	e.refs++
	c.entries[d] = e
	c.ring = append(c.ring, e)
	c.used += cost
	return e
}

// drop empties the cache (it is being replaced): entries go once their
// readers release them.
func (c *chunkCache) drop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.dropped {
		close(c.stop)
	}
	c.dropped = true
	for len(c.ring) > 0 {
		c.removeLocked(c.ring[len(c.ring)-1])
	}
}

// removeLocked takes e out; the last entry of the ring takes its place,
// which the hand then looks at next.
func (c *chunkCache) removeLocked(e *cachedChunk) {
	delete(c.entries, e.d)
	last := c.ring[len(c.ring)-1]
	c.ring[e.at] = last
	last.at = e.at
	c.ring = c.ring[:len(c.ring)-1]
	c.used -= c.cost(int64(len(e.data)))
	e.out = true
	c.releaseLocked(e)
}
