package blobstore

import (
	"sync"

	"github.com/tvix-go/tvix/castore"
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
type chunkCache struct {
	max int64

	mu      sync.Mutex
	used    int64
	entries map[castore.Digest]*cachedChunk
	ring    []*cachedChunk // CLOCK order
	hand    int
	// freq counts requests per digest, cached or not, halved every
	// agingPeriod requests so that what was popular long ago yields.
	freq     map[castore.Digest]uint8
	requests int
}

type cachedChunk struct {
	d    castore.Digest
	data []byte
	used bool // asked for since the hand last passed
	at   int  // index in ring
}

// chunkOverhead is what an entry costs beside its bytes (map slot, entry,
// frequency count), so that many tiny chunks are bounded too.
const chunkOverhead = 160

func newChunkCache(max int64) *chunkCache {
	return &chunkCache{max: max, entries: map[castore.Digest]*cachedChunk{}, freq: map[castore.Digest]uint8{}}
}

func (c *chunkCache) cost(size int64) int64 { return size + chunkOverhead }

// get returns chunk d's verified bytes, if held. A request counts for
// admission when count is set: a reader asks once per chunk, however many
// ways it looks (a range, a read, a range again).
func (c *chunkCache) get(d castore.Digest, count bool) ([]byte, bool) {
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
	return e.data, true
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
// the hand's way: first those not used since the hand passed, then the
// others (their second chance), each only if it is asked for less often
// than want. It reports false if they do not make room.
func (c *chunkCache) victimsLocked(cost int64, want uint8) ([]*cachedChunk, bool) {
	need := c.used + cost - c.max
	var victims, passed []*cachedChunk
	consider := func(e *cachedChunk) {
		if need > 0 && c.freq[e.d] < want {
			victims = append(victims, e)
			need -= c.cost(int64(len(e.data)))
		}
	}
	for i := 0; need > 0 && i < len(c.ring); i++ {
		if e := c.ring[(c.hand+i)%len(c.ring)]; e.used {
			passed = append(passed, e)
		} else {
			consider(e)
		}
	}
	for _, e := range passed {
		consider(e)
	}
	return victims, need <= 0
}

// add keeps data, verified to hash to d, if victimsLocked makes room.
func (c *chunkCache) add(d castore.Digest, data []byte) {
	cost := c.cost(int64(len(data)))
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[d]; ok || cost > c.max/8 {
		return
	}
	victims, ok := c.victimsLocked(cost, c.freq[d])
	if !ok {
		return
	}
	if len(victims) > 0 {
		// The hand moves past what it took; the entries it passed on the
		// way lose their second chance.
		last := victims[len(victims)-1].at
		for i := c.hand % len(c.ring); i != last; i = (i + 1) % len(c.ring) {
			c.ring[i].used = false
		}
		c.hand = last
	}
	for _, e := range victims {
		c.removeLocked(e)
	}
	e := &cachedChunk{d: d, data: data, at: len(c.ring)}
	c.entries[d] = e
	c.ring = append(c.ring, e)
	c.used += cost
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
}
