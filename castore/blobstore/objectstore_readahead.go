package blobstore

import (
	"container/list"
	"sync"

	"github.com/tvix-go/tvix/castore"
)

// Read-ahead for a remote object store: a reader going through a blob in
// order (a NAR being served, a file copied off a mount) would otherwise
// wait one round trip per chunk. Chunk lists are remembered as they are
// read; opening chunk i of one right after chunk i-1 starts fetching the
// next readAhead chunks, which the reader then finds fetched. A random
// reader triggers nothing. What is fetched ahead is held, at most
// readAheadHeld chunks over all readers, until opened or pushed out.
const (
	readAhead     = 4
	readAheadHeld = 64
	// rememberedLists bounds the chunk lists kept for it.
	rememberedLists = 256
)

type readAheader struct {
	mu sync.Mutex
	// position of each chunk in the lists remembered (a chunk shared by
	// two blobs keeps one of them: read-ahead is a guess).
	position map[castore.Digest]chunkPos
	lists    *list.List // of []castore.ChunkMeta, most recent first
	lastOpen map[*listEntry]int
	held     map[castore.Digest]*heldChunkData
	heldLRU  *list.List                       // of castore.Digest
	inFlight map[castore.Digest]chan struct{} // closed when the fetch ends
	fetch    func(castore.Digest) ([]byte, error)
}

type listEntry struct{ chunks []castore.ChunkMeta }

type chunkPos struct {
	l *listEntry
	i int
}

type heldChunkData struct {
	data []byte
	el   *list.Element
}

func newReadAheader(fetch func(castore.Digest) ([]byte, error)) *readAheader {
	return &readAheader{position: map[castore.Digest]chunkPos{}, lists: list.New(), lastOpen: map[*listEntry]int{},
		held: map[castore.Digest]*heldChunkData{}, heldLRU: list.New(), inFlight: map[castore.Digest]chan struct{}{}, fetch: fetch}
}

// remember notes a chunk list just read.
func (r *readAheader) remember(chunks []castore.ChunkMeta) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.position[chunks[0].Digest]; ok && len(p.l.chunks) == len(chunks) {
		return
	}
	e := &listEntry{chunks}
	r.lists.PushFront(e)
	for i, c := range chunks {
		r.position[c.Digest] = chunkPos{e, i}
	}
	r.lastOpen[e] = -1
	for r.lists.Len() > rememberedLists {
		old := r.lists.Remove(r.lists.Back()).(*listEntry)
		delete(r.lastOpen, old)
		for _, c := range old.chunks {
			if r.position[c.Digest].l == old {
				delete(r.position, c.Digest)
			}
		}
	}
}

// take returns chunk d's bytes if they were fetched ahead, and starts
// fetching ahead if d continues a sequential read.
func (r *readAheader) take(d castore.Digest) ([]byte, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if done, ok := r.inFlight[d]; ok {
		// Fetched ahead but not there yet: wait rather than fetch twice.
		r.mu.Unlock()
		<-done
		r.mu.Lock()
	}
	var data []byte
	h, ok := r.held[d]
	if ok {
		data = h.data
		r.heldLRU.Remove(h.el)
		delete(r.held, d)
	}
	p, known := r.position[d]
	if !known {
		return data, ok
	}
	sequential := r.lastOpen[p.l] == p.i-1 || ok
	r.lastOpen[p.l] = p.i
	if !sequential {
		return data, ok
	}
	for j := p.i + 1; j <= p.i+readAhead && j < len(p.l.chunks); j++ {
		next := p.l.chunks[j].Digest
		if _, busy := r.inFlight[next]; busy || r.held[next] != nil {
			continue
		}
		done := make(chan struct{})
		r.inFlight[next] = done
		go r.fetchAhead(next, done)
	}
	return data, ok
}

func (r *readAheader) fetchAhead(d castore.Digest, done chan struct{}) {
	data, err := r.fetch(d)
	r.mu.Lock()
	defer r.mu.Unlock()
	defer close(done)
	delete(r.inFlight, d)
	if err != nil || r.held[d] != nil {
		return // the reader fetches it itself and sees the error
	}
	r.held[d] = &heldChunkData{data: data, el: r.heldLRU.PushFront(d)}
	for r.heldLRU.Len() > readAheadHeld {
		delete(r.held, r.heldLRU.Remove(r.heldLRU.Back()).(castore.Digest))
	}
}
