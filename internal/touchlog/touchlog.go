// Package touchlog remembers, cheaply, which objects were recently written,
// found present or opened, and which are open right now: what a garbage
// collector's marking cannot see (an upload that deduplicated against an
// object and has not yet recorded anything naming it; a reader half way
// through). A sweep keeps every object touched at or after its epoch.
//
// Objects are remembered by the first 8 bytes of their digest: a
// collision only keeps an object that could have gone, never the reverse,
// and it halves the memory (a day of touches of a busy daemon is millions).
package touchlog

import (
	"encoding/binary"
	"sync"
	"time"
)

// MaxAge is how long a touch is remembered. A collection's epoch is never
// older than its grace period or the oldest session holding temporary
// roots; an upload that runs longer than this without either is not
// protected.
const MaxAge = 24 * time.Hour

// Log is a set of recent touches and current holds. Its zero value is not
// usable; use New.
type Log struct {
	// mu orders a sweep's decisions against lookups: a lookup that finds
	// an object and touches it runs under RLock (Guard), a sweep decides
	// and deletes under Lock, so an object a lookup found is either
	// touched before the sweep looks, or gone before the lookup runs.
	mu sync.RWMutex

	tmu     sync.Mutex
	touched map[uint64]int64 // key → last touch, unix nanoseconds
	held    map[uint64]int
	inserts int
	now     func() time.Time
}

func New() *Log {
	return &Log{touched: map[uint64]int64{}, held: map[uint64]int{}, now: time.Now}
}

func key[D ~[32]byte](d D) uint64 { return binary.LittleEndian.Uint64(d[:8]) }

// Guard runs a lookup that may touch what it finds under the read side of
// the sweep lock.
func (l *Log) Guard(f func()) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	f()
}

// Exclusive runs a sweep's decide-and-delete step with no lookup between
// its decision and its deletion. Keep the step short: lookups wait.
func (l *Log) Exclusive(f func() error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return f()
}

// Touch records that d was used now.
func (l *Log) Touch(d [32]byte) {
	now := l.now().UnixNano()
	l.tmu.Lock()
	l.touched[key(d)] = now
	l.inserts++
	if l.inserts >= 1<<16 {
		l.inserts = 0
		l.pruneLocked(now - int64(MaxAge))
	}
	l.tmu.Unlock()
}

// Hold records that ds are in use (an open reader) until release is
// called; held objects count as touched whatever the epoch.
func Hold[D ~[32]byte](l *Log, ds ...D) (release func()) {
	keys := make([]uint64, len(ds))
	now := l.now().UnixNano()
	l.tmu.Lock()
	for i, d := range ds {
		keys[i] = key(d)
		l.held[keys[i]]++
		l.touched[keys[i]] = now
	}
	l.tmu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			l.tmu.Lock()
			for _, k := range keys {
				if l.held[k]--; l.held[k] <= 0 {
					delete(l.held, k)
				}
			}
			l.tmu.Unlock()
		})
	}
}

// Since reports whether d was touched at or after t, or is held.
func (l *Log) Since(d [32]byte, t time.Time) bool {
	k := key(d)
	l.tmu.Lock()
	defer l.tmu.Unlock()
	if l.held[k] > 0 {
		return true
	}
	at, ok := l.touched[k]
	return ok && at >= t.UnixNano()
}

func (l *Log) pruneLocked(before int64) {
	for k, at := range l.touched {
		if at < before && l.held[k] == 0 {
			delete(l.touched, k)
		}
	}
}

// Len is how many objects are remembered (for tests and memory figures).
func (l *Log) Len() int {
	l.tmu.Lock()
	defer l.tmu.Unlock()
	return len(l.touched)
}
