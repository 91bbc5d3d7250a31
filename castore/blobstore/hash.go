package blobstore

import (
	"math/bits"

	"lukechampine.com/blake3/guts"

	"github.com/tvix-go/tvix/castore"
)

// blake3Serial is BLAKE3-256 of p on the calling goroutine. The library's
// Hasher hashes a large Write on a goroutine per 16 KiB (and copies tails
// of fewer than 16 chunks into a buffer it allocates); verifying a chunk
// per request on a busy server, that is a wakeup of another thread per
// 16 KiB (futex calls were most of the serving daemon's system time) for
// work the other connections keep every core busy with anyway, and
// ingesting, a quarter of a GiB of garbage per 370 MiB. The SIMD
// compression is the library's; only the tree walk, the library's own,
// runs here in order.
func blake3Serial(p []byte) castore.Digest {
	var h serialHasher
	h.Write(p)
	return h.Sum()
}

// serialHasher is BLAKE3-256 of what is written, hashed as blake3Serial
// does: the whole-blob digest of a blob being put.
type serialHasher struct {
	stack   [64][8]uint32
	counter uint64 // chunks hashed into stack; bit i set: a subtree of 2^i chunks at stack[i]
	// buf holds the last chunk (1 to 1024 bytes) until more comes: it is
	// the root's, or its ancestor's, if nothing does.
	buf    [guts.ChunkSize]byte
	buflen int
}

func (h *serialHasher) push(cv [8]uint32, height int) {
	i := height
	for h.counter&(1<<i) != 0 {
		cv = guts.ChainingValue(guts.ParentNode(h.stack[i], cv, &guts.IV, 0))
		i++
	}
	h.stack[i] = cv
	h.counter += 1 << height
}

func (h *serialHasher) Write(p []byte) {
	if h.buflen > 0 {
		n := copy(h.buf[h.buflen:], p)
		h.buflen += n
		p = p[n:]
		if len(p) == 0 {
			return
		}
		h.push(guts.ChainingValue(guts.CompressChunk(h.buf[:], &guts.IV, h.counter, 0)), 0)
		h.buflen = 0
	}
	const group = guts.MaxSIMD * guts.ChunkSize
	for len(p) > guts.ChunkSize {
		// Sixteen chunks at once once the count is a multiple of sixteen
		// (they are then one subtree), chunk by chunk until it is.
		if h.counter%guts.MaxSIMD == 0 && len(p) > group {
			n := guts.CompressBuffer((*[group]byte)(p[:group]), group, &guts.IV, h.counter, 0)
			h.push(guts.ChainingValue(n), bits.TrailingZeros(guts.MaxSIMD))
			p = p[group:]
			continue
		}
		h.push(guts.ChainingValue(guts.CompressChunk(p[:guts.ChunkSize], &guts.IV, h.counter, 0)), 0)
		p = p[guts.ChunkSize:]
	}
	if len(p) > 0 {
		h.buflen = copy(h.buf[:], p)
	}
}

// Sum is the digest of what was written.
func (h *serialHasher) Sum() castore.Digest {
	n := guts.CompressChunk(h.buf[:h.buflen], &guts.IV, h.counter, 0)
	for i := bits.TrailingZeros64(h.counter); i < bits.Len64(h.counter); i++ {
		if h.counter&(1<<i) != 0 {
			n = guts.ParentNode(h.stack[i], guts.ChainingValue(n), &guts.IV, 0)
		}
	}
	n.Flags |= guts.FlagRoot
	out := guts.WordsToBytes(guts.CompressNode(n))
	var d castore.Digest
	copy(d[:], out[:len(d)])
	return d
}
