package narbridge

import (
	"sync"
	"time"

	"github.com/tvix-go/tvix/castore/castorev1"
)

// pendingNAR is a NAR that arrived and was ingested but that no narinfo
// has named yet. Nix uploads the NAR first and the narinfo last, and
// only the narinfo makes the path (a PathInfo) exist.
type pendingNAR struct {
	url       string // "nar/<file hash>.nar[.ext]"
	owner     string // who uploaded it (see Handler.uploader)
	root      *castorev1.Node
	narSize   uint64
	narSHA256 [32]byte
	fileHash  [32]byte
	fileSize  uint64
	added     time.Time
}

// pendingTable holds pendingNARs, looked up by the URL they were put at
// (what the narinfo's URL field names) and by NAR hash (what its NarHash
// field names), both only among the NARs of one uploader: a narinfo must
// not commit content someone else sent. It is bounded in count and age, so uploads that never
// get a narinfo cannot pile up; their blobs stay in castore as orphans.
type pendingTable struct {
	mu     sync.Mutex
	max    int
	ttl    time.Duration
	now    func() time.Time
	queue  []*pendingNAR // oldest first
	byURL  map[ownedURL]*pendingNAR
	byHash map[ownedHash]*pendingNAR
}

type ownedURL struct{ owner, url string }

type ownedHash struct {
	owner string
	hash  [32]byte
}

func newPendingTable(max int, ttl time.Duration) *pendingTable {
	return &pendingTable{max: max, ttl: ttl, now: time.Now,
		byURL: map[ownedURL]*pendingNAR{}, byHash: map[ownedHash]*pendingNAR{}}
}

func (t *pendingTable) add(p *pendingNAR) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p.added = t.now()
	t.queue = append(t.queue, p)
	t.byURL[ownedURL{p.owner, p.url}] = p
	t.byHash[ownedHash{p.owner, p.narSHA256}] = p
	t.evictLocked()
}

// evictLocked drops expired entries and the oldest beyond max. An entry
// replaced by a newer upload under the same key stays in the queue until
// it reaches the front; it only removes map entries still pointing at it.
func (t *pendingTable) evictLocked() {
	cutoff := t.now().Add(-t.ttl)
	live := len(t.byURL)
	for len(t.queue) > 0 {
		p := t.queue[0]
		if !p.added.Before(cutoff) && live <= t.max && len(t.queue) <= 2*t.max {
			break
		}
		t.queue[0] = nil
		t.queue = t.queue[1:]
		if k := (ownedURL{p.owner, p.url}); t.byURL[k] == p {
			delete(t.byURL, k)
			live--
		}
		if k := (ownedHash{p.owner, p.narSHA256}); t.byHash[k] == p {
			delete(t.byHash, k)
		}
	}
}

// lookup finds the NAR a narinfo from owner names: by its URL when that
// was uploaded here, else by its NAR hash.
func (t *pendingTable) lookup(owner, url string, narSHA256 [32]byte) (*pendingNAR, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.evictLocked()
	if p, ok := t.byURL[ownedURL{owner, url}]; ok {
		return p, true
	}
	p, ok := t.byHash[ownedHash{owner, narSHA256}]
	return p, ok
}

func (t *pendingTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byURL)
}
