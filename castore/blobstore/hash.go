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
// does: the whole-blob digest of a blob being put. It hashes sixteen
// chunks at a time (the SIMD width), buffering up to that much, so that
// writes of any size keep every group a whole subtree; only the tail, at
// Sum, goes chunk by chunk.
type serialHasher struct {
	stack   [64][8]uint32
	counter uint64 // chunks hashed into stack, a multiple of 16 until Sum; bit i set: a subtree of 2^i chunks at stack[i]
	buf     [group]byte
	buflen  int // 1 to group bytes once anything was written: the last group is the root's side
}

const group = guts.MaxSIMD * guts.ChunkSize

func (h *serialHasher) push(cv [8]uint32, height int) {
	i := height
	for h.counter&(1<<i) != 0 {
		cv = guts.ChainingValue(guts.ParentNode(h.stack[i], cv, &guts.IV, 0))
		i++
	}
	h.stack[i] = cv
	h.counter += 1 << height
}

func (h *serialHasher) pushGroup(g *[group]byte) {
	n := guts.CompressBuffer(g, group, &guts.IV, h.counter, 0)
	h.push(guts.ChainingValue(n), bits.TrailingZeros(guts.MaxSIMD))
}

func (h *serialHasher) Write(p []byte) {
	if h.buflen > 0 {
		n := copy(h.buf[h.buflen:], p)
		h.buflen += n
		p = p[n:]
		if len(p) == 0 {
			return
		}
		h.pushGroup(&h.buf)
		h.buflen = 0
	}
	for len(p) > group {
		h.pushGroup((*[group]byte)(p[:group]))
		p = p[group:]
	}
	h.buflen = copy(h.buf[:], p)
}

// Sum is the digest of what was written.
func (h *serialHasher) Sum() castore.Digest {
	// The tail (up to sixteen chunks, the last of them 1 to 1024 bytes, or
	// nothing for empty input) is the rightmost subtree: its whole chunks
	// go through the SIMD compression too (a chunk at a time they took a
	// tenth of a serving daemon's CPU: most chunks end in a partial group),
	// then it joins the subtrees on the stack, smallest first.
	counter := h.counter
	n := guts.CompressBuffer(&h.buf, h.buflen, &guts.IV, counter, 0)
	for i := bits.TrailingZeros64(counter); i < bits.Len64(counter); i++ {
		if counter&(1<<i) != 0 {
			n = guts.ParentNode(h.stack[i], guts.ChainingValue(n), &guts.IV, 0)
		}
	}
	n.Flags |= guts.FlagRoot
	out := guts.WordsToBytes(guts.CompressNode(n))
	var d castore.Digest
	copy(d[:], out[:len(d)])
	return d
}
