package blobstore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castoretest"
)

// mapStorage is an ObjectStorage in a map that counts its Gets.
type mapStorage struct {
	mu      sync.Mutex
	objects map[string][]byte
	gets    map[string]int
}

func newMapStorage() *mapStorage {
	return &mapStorage{objects: map[string][]byte{}, gets: map[string]int{}}
}

func (m *mapStorage) Exists(_ context.Context, key string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.objects[key]
	return ok, nil
}

func (m *mapStorage) Get(_ context.Context, key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gets[key]++
	data, ok := m.objects[key]
	if !ok {
		return nil, fmt.Errorf("%s: %w", key, castore.ErrNotFound)
	}
	return bytes.Clone(data), nil
}

func (m *mapStorage) Put(_ context.Context, key string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.objects[key] = bytes.Clone(data)
	return nil
}

func (m *mapStorage) Close() error { return nil }

func TestObjectStoreConformance(t *testing.T) {
	castoretest.RunBlobService(t, func(t *testing.T) castore.BlobService {
		s, err := NewObjectStore(newMapStorage(), ObjectStoreOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// A sequential reader finds the next chunks fetched ahead, and no chunk
// is fetched twice; a reader jumping about fetches only what it reads.
func TestObjectStoreReadAhead(t *testing.T) {
	ctx := context.Background()
	m := newMapStorage()
	s, err := NewObjectStore(m, ObjectStoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	data := make([]byte, 12<<20)
	rand.New(rand.NewSource(1)).Read(data)
	d, err := castoretest.PutBlob(t, s, data, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	chunks, _ := s.Chunks(ctx, d)
	if len(chunks) < 8 {
		t.Fatalf("%d chunks, want several", len(chunks))
	}
	r, err := s.Open(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	r.Read(buf) // the first chunk
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		m.mu.Lock()
		got := m.gets[ObjectKey(ChunkObjects, chunks[readAhead].Digest)]
		m.mu.Unlock()
		if got == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("reading the first chunk did not fetch the next ones ahead")
		}
	}
	rest, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(append(buf, rest...), data) {
		t.Fatalf("sequential read: %v", err)
	}
	m.mu.Lock()
	for i, c := range chunks {
		if n := m.gets[ObjectKey(ChunkObjects, c.Digest)]; n != 1 {
			t.Errorf("chunk %d fetched %d times", i, n)
		}
	}
	m.gets = map[string]int{}
	m.mu.Unlock()

	// Far apart reads: each fetches its own chunk and starts nothing.
	s2, _ := NewObjectStore(m, ObjectStoreOptions{})
	defer s2.Close()
	r, _ = s2.Open(ctx, d)
	for _, off := range []int64{int64(len(data)) - 10, 0, int64(len(data)) / 2} {
		if _, err := r.ReadAt(buf, off); err != nil {
			t.Fatal(err)
		}
	}
	r.Close()
	time.Sleep(100 * time.Millisecond)
	m.mu.Lock()
	defer m.mu.Unlock()
	total := 0
	for key, n := range m.gets {
		if key[:len(ChunkObjects)] == ChunkObjects {
			total += n
		}
	}
	if total > 3+readAhead {
		t.Fatalf("3 random reads fetched %d chunks", total)
	}
}

// Has reads a blob's chunk list once, for the answer and for touching its
// chunks: on S3 each read is a GET.
func TestObjectStoreHasReadsManifestOnce(t *testing.T) {
	ms := newMapStorage()
	s, err := NewObjectStore(ms, ObjectStoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	big := make([]byte, 3<<20) // several chunks: a chunk list
	rand.New(rand.NewSource(9)).Read(big)
	for _, c := range []struct {
		name string
		data []byte
	}{{"multi-chunk", big}, {"single-chunk", []byte("one small chunk")}} {
		w, err := s.Put(ctx)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(c.data)
		d, err := w.Close()
		if err != nil {
			t.Fatal(err)
		}
		key := ObjectKey(BlobObjects, d)
		ms.mu.Lock()
		before := ms.gets[key]
		ms.mu.Unlock()
		if ok, err := s.Has(ctx, d); err != nil || !ok {
			t.Fatalf("%s: Has = %v, %v", c.name, ok, err)
		}
		ms.mu.Lock()
		got := ms.gets[key] - before
		ms.mu.Unlock()
		if got != 1 {
			t.Errorf("%s: Has read the chunk list %d times, want once", c.name, got)
		}
	}
}
