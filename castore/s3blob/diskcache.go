package s3blob

import (
	"container/list"
	"context"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/tvix-go/tvix/castore/blobstore"
)

// diskCache keeps objects fetched from the bucket in a local directory, so
// a builder or a mount reading the same chunks again does not fetch them
// again. Objects are immutable (named by content), so a cached one is
// never stale; it is verified where every chunk is, when blobstore reads
// it. The cache holds at most max bytes, evicting the least recently
// used. Several processes must not share one directory: each keeps its
// own account of what is there.
type diskCache struct {
	inner  blobstore.ObjectStorage
	bucket blobstore.ObjectSweeper
	dir    string
	max    int64

	mu      sync.Mutex
	lru     *list.List // of *cached, most recent first
	entries map[string]*list.Element
	size    int64
}

type cached struct {
	name string
	size int64
}

func newDiskCache(inner blobstore.ObjectSweeper, dir string, max int64) (*diskCache, error) {
	if max == 0 {
		max = 1 << 30
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("s3 cache %s: %w", dir, err)
	}
	c := &diskCache{inner: inner, bucket: inner, dir: dir, max: max, lru: list.New(), entries: map[string]*list.Element{}}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("s3 cache %s: %w", dir, err)
	}
	type found struct {
		cached
		mtime int64
	}
	var have []found
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if strings.HasPrefix(e.Name(), "tmp-") {
			os.Remove(filepath.Join(dir, e.Name())) // an interrupted fill
			continue
		}
		have = append(have, found{cached{e.Name(), fi.Size()}, fi.ModTime().UnixNano()})
	}
	sort.Slice(have, func(i, j int) bool { return have[i].mtime > have[j].mtime })
	for _, f := range have {
		c.entries[f.name] = c.lru.PushBack(&cached{f.name, f.size})
		c.size += f.size
	}
	c.mu.Lock()
	c.evictLocked()
	c.mu.Unlock()
	return c, nil
}

// fileName flattens a key: the layout's keys are kind/b3/shard/hex.
func fileName(key string) string { return strings.ReplaceAll(key, "/", "_") }

func (c *diskCache) Exists(ctx context.Context, key string) (bool, error) {
	c.mu.Lock()
	_, ok := c.entries[fileName(key)]
	c.mu.Unlock()
	if ok {
		return true, nil
	}
	return c.inner.Exists(ctx, key)
}

func (c *diskCache) Get(ctx context.Context, key string) ([]byte, error) {
	name := fileName(key)
	c.mu.Lock()
	el, ok := c.entries[name]
	if ok {
		c.lru.MoveToFront(el)
	}
	c.mu.Unlock()
	if ok {
		if data, err := os.ReadFile(filepath.Join(c.dir, name)); err == nil {
			return data, nil
		}
		c.drop(name) // gone behind our back: fetch again
	}
	data, err := c.inner.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	c.add(name, data)
	return data, nil
}

// add stores a fetched object; failing to cache is not failing to read.
func (c *diskCache) add(name string, data []byte) {
	if int64(len(data)) > c.max {
		return
	}
	f, err := os.CreateTemp(c.dir, "tmp-")
	if err != nil {
		return
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(c.dir, name))
	}
	if err != nil {
		os.Remove(f.Name())
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, dup := c.entries[name]; dup {
		return // another reader filled it meanwhile; same bytes
	}
	c.entries[name] = c.lru.PushFront(&cached{name, int64(len(data))})
	c.size += int64(len(data))
	c.evictLocked()
}

func (c *diskCache) evictLocked() {
	for c.size > c.max {
		el := c.lru.Back()
		if el == nil {
			return
		}
		e := el.Value.(*cached)
		c.lru.Remove(el)
		delete(c.entries, e.name)
		c.size -= e.size
		os.Remove(filepath.Join(c.dir, e.name))
	}
}

func (c *diskCache) drop(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[name]; ok {
		c.size -= el.Value.(*cached).size
		c.lru.Remove(el)
		delete(c.entries, name)
	}
}

func (c *diskCache) Put(ctx context.Context, key string, data []byte) error {
	return c.inner.Put(ctx, key, data)
}

func (c *diskCache) Close() error { return c.inner.Close() }

// The cache passes enumeration and deletion through to the bucket
// (blobstore.ObjectSweeper), forgetting what is deleted.
func (c *diskCache) List(ctx context.Context, prefix string) iter.Seq2[blobstore.ObjectInfo, error] {
	return c.bucket.List(ctx, prefix)
}

func (c *diskCache) Delete(ctx context.Context, key string) error {
	c.drop(fileName(key))
	os.Remove(filepath.Join(c.dir, fileName(key)))
	return c.bucket.Delete(ctx, key)
}

func (c *diskCache) Touch(ctx context.Context, key string) error { return c.bucket.Touch(ctx, key) }

func (c *diskCache) Stat(ctx context.Context, key string) (blobstore.ObjectInfo, bool, error) {
	return c.bucket.Stat(ctx, key)
}

// Unwrap lets callers reach the bucket (castore.As).
func (c *diskCache) Unwrap() any { return c.inner }

// cachedBytes is what the cache holds now, for tests.
func (c *diskCache) cachedBytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size
}
