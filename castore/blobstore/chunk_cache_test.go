package blobstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/internal/meminfo"
)

// readBlob reads blob d whole through Open.
func readBlob(s *Store, d castore.Digest) ([]byte, error) {
	r, err := s.Open(context.Background(), d)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// The chunk cache holds only bytes that hashed to their digest: a chunk
// corrupt on disk before it was first read is refused every time (never
// admitted), and once a chunk is cached, a byte flipped on disk afterwards
// does not reach readers, who get the verified bytes. In every backend.
func TestChunkCacheKeepsVerifiedBytes(t *testing.T) {
	for _, tc := range localBackends {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.open(t)
			defer s.Close()
			s.SetChunkCache(64 << 20)
			big := make([]byte, 6<<20)
			rand.New(rand.NewSource(2)).Read(big)
			small := []byte(strings.Repeat("cached blob ", 1000))
			bd, sd := putBlob(t, s, big), putBlob(t, s, small)
			chunks, err := s.Chunks(context.Background(), bd)
			if err != nil || len(chunks) < 3 {
				t.Fatalf("big blob has %d chunks (%v), want several", len(chunks), err)
			}

			// Corrupt before any read: refused, the first time and again.
			flipByte(t, s, chunks[2].Digest, 7)
			for i := range 2 {
				if _, err := readBlob(s, bd); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("read %d of a blob corrupt on disk: %v, want ErrCorrupt", i, err)
				}
			}
			flipByte(t, s, chunks[2].Digest, 7) // mended

			// Read once: cached. Flipped on disk after: still the true bytes.
			for _, want := range [][]byte{big, small} {
				d := bd
				if len(want) == len(small) {
					d = sd
				}
				if got, err := readBlob(s, d); err != nil || !bytes.Equal(got, want) {
					t.Fatalf("first read: %d bytes, %v", len(got), err)
				}
			}
			flipByte(t, s, chunks[1].Digest, 100)
			flipByte(t, s, sd, 5)
			for _, want := range [][]byte{big, small} {
				d := bd
				if len(want) == len(small) {
					d = sd
				}
				got, err := readBlob(s, d)
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("read after a flip on disk: %d bytes, equal %v, %v", len(got), bytes.Equal(got, want), err)
				}
			}
			// Without the cache the flips are seen: the cache was what served.
			s.SetChunkCache(0)
			if _, err := readBlob(s, sd); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("without the cache: %v, want ErrCorrupt", err)
			}
		})
	}
}

// A blob the store deleted is not served from the cache.
func TestChunkCacheSweptBlobGone(t *testing.T) {
	s := mustPack(t, t.TempDir())
	defer s.Close()
	s.SetChunkCache(16 << 20)
	d := putBlob(t, s, []byte(strings.Repeat("swept ", 500)))
	if err := castore.SyncBlobs(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if _, err := readBlob(s, d); err != nil {
		t.Fatal(err)
	}
	rep, err := s.Sweep(context.Background(), castore.SweepRequest{Live: func(castore.Digest) bool { return false }, Since: time.Now().Add(time.Hour)})
	if err != nil || rep.Chunks == 0 {
		t.Fatalf("sweep: %+v, %v", rep, err)
	}
	if got, err := readBlob(s, d); !errors.Is(err, castore.ErrNotFound) {
		t.Fatalf("read of a swept blob: %d bytes, %v; want ErrNotFound", len(got), err)
	}
}

// The cache stays within its bound; a scan through more than it holds,
// over and over (every NAR of a closure larger than the cache), keeps a
// stable part cached instead of replacing everything each pass; a new
// working set that fits takes over once it is asked for more often.
func TestChunkCachePolicy(t *testing.T) {
	const size = 1000
	c := newChunkCache(10 * (size + chunkOverhead))
	digest := func(set, i int) castore.Digest { return castore.Digest{byte(set), byte(i)} }
	pass := func(set, n int) (hits int) {
		for i := range n {
			d := digest(set, i)
			if e, ok := c.get(d, true); ok {
				c.release(e)
				hits++
				continue
			}
			if c.admits(d, size) {
				data, mapped := allocChunk(size)
				c.release(c.add(d, data, mapped))
			}
			if c.used > c.max {
				t.Fatalf("cache holds %d bytes, bound %d", c.used, c.max)
			}
		}
		return hits
	}
	for range 5 {
		pass(0, 15)
	}
	for round := range 5 {
		if hits := pass(0, 15); hits < 8 {
			t.Fatalf("scan of 15 through a cache of 10, round %d: %d hits, want at least 8", round, hits)
		}
	}
	hits := 0
	for range 2000 {
		hits = pass(1, 8)
	}
	if hits != 8 {
		t.Fatalf("a working set of 8 asked for 2000 times: %d of 8 cached", hits)
	}
	// A chunk of more than an eighth of the cache is never admitted.
	if c.admits(digest(2, 0), c.max/4) {
		t.Fatal("a chunk of a quarter of the cache admitted")
	}
}

// An entry evicted (here: the cache dropped) while a reader holds it keeps
// its bytes, mapped off the heap, until the reader releases it; then they
// are given back.
func TestChunkCacheHeldEntryOutlivesEviction(t *testing.T) {
	c := newChunkCache(64 << 20)
	data, mapped := allocChunk(1 << 20)
	if !mapped {
		t.Fatal("a 1 MiB chunk is not mapped off the heap")
	}
	for i := range data {
		data[i] = byte(i)
	}
	e := c.add(castore.Digest{1}, data, mapped)
	if e.out {
		t.Fatal("not cached")
	}
	c.drop()
	for i, b := range e.data {
		if b != byte(i) {
			t.Fatalf("byte %d of a held, evicted entry changed", i)
		}
	}
	c.release(e)
	if e.data != nil {
		t.Fatal("released and evicted, the entry still has its bytes")
	}
	if _, ok := c.get(castore.Digest{1}, true); ok {
		t.Fatal("dropped entry still cached")
	}
}

// Short of memory, the cache halves what it holds (down to
// minUnderPressure), admits only within that, keeps entries readers hold
// valid, and grows back to its bound once memory is free again.
func TestChunkCacheGivesMemoryBack(t *testing.T) {
	const chunk = 1 << 20
	c := newChunkCache(512 << 20)
	fill := func(from, n int) {
		for i := from; i < from+n; i++ {
			data, mapped := allocChunk(chunk)
			c.release(c.add(castore.Digest{byte(i), byte(i >> 8), 7}, data, mapped))
		}
	}
	fill(0, 400)
	held, ok := c.get(castore.Digest{0, 0, 7}, true)
	if !ok {
		t.Fatal("chunk 0 not cached")
	}
	for i := range held.data {
		held.data[i] = 0x5a
	}
	before := c.used
	short := meminfo.Memory{Total: 16 << 30, Available: 512 << 20}
	c.adapt(short)
	if c.used > before/2 || c.limit != before/2 {
		t.Fatalf("short of memory: holds %d of %d, limit %d", c.used, before, c.limit)
	}
	for i, b := range held.data {
		if b != 0x5a {
			t.Fatalf("byte %d of a held entry changed when the cache shrank", i)
		}
	}
	c.release(held)
	for range 5 {
		c.adapt(short)
	}
	if c.used > minUnderPressure || c.limit != minUnderPressure {
		t.Fatalf("still short: holds %d, limit %d; want at most %d", c.used, c.limit, int64(minUnderPressure))
	}
	fill(1000, 200)
	if c.used > c.limit {
		t.Fatalf("admitted past the lowered limit: %d > %d", c.used, c.limit)
	}
	// Between a sixteenth and a quarter free: nothing changes.
	c.adapt(meminfo.Memory{Total: 16 << 30, Available: 2 << 30})
	if c.limit != minUnderPressure {
		t.Fatalf("limit moved without pressure or room: %d", c.limit)
	}
	free := meminfo.Memory{Total: 16 << 30, Available: 12 << 30}
	for range 4 {
		c.adapt(free)
	}
	if c.limit != c.max {
		t.Fatalf("with memory free again the limit is %d, want %d", c.limit, c.max)
	}
	fill(2000, 400)
	if c.used < 400<<20 {
		t.Fatalf("grown back, the cache holds only %d", c.used)
	}
	c.drop()
	c.drop() // a second drop (a store closed after a resize) is harmless
}
