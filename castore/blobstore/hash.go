package blobstore

import (
	"math/bits"

	"lukechampine.com/blake3/guts"

	"github.com/tvix-go/tvix/castore"
)

// blake3Serial is BLAKE3-256 of p on the calling goroutine. The library's
// Hasher hashes a large Write on a goroutine per 16 KiB; verifying a chunk
// per request on a busy server, that is a wakeup of another thread per
// 16 KiB (futex calls were most of the serving daemon's system time) for
// work the other connections keep every core busy with anyway. The SIMD
// compression is the library's; only the tree walk, the library's own,
// runs here in order.
func blake3Serial(p []byte) castore.Digest {
	var (
		stack   [64][8]uint32
		counter uint64 // chunks hashed into stack; bit i set: a subtree of 2^i chunks at stack[i]
	)
	key := &guts.IV
	push := func(cv [8]uint32, height int) {
		i := height
		for counter&(1<<i) != 0 {
			cv = guts.ChainingValue(guts.ParentNode(stack[i], cv, key, 0))
			i++
		}
		stack[i] = cv
		counter += 1 << height
	}
	// The last chunk (1 to 1024 bytes, or none for empty input) is the
	// root's or its ancestor's: it is compressed last, below.
	last := len(p) % guts.ChunkSize
	if last == 0 && len(p) > 0 {
		last = guts.ChunkSize
	}
	body, tail := p[:len(p)-last], p[len(p)-last:]
	const group = guts.MaxSIMD * guts.ChunkSize
	for len(body) >= group {
		n := guts.CompressBuffer((*[group]byte)(body[:group]), group, key, counter, 0)
		push(guts.ChainingValue(n), bits.TrailingZeros(guts.MaxSIMD))
		body = body[group:]
	}
	for len(body) > 0 {
		push(guts.ChainingValue(guts.CompressChunk(body[:guts.ChunkSize], key, counter, 0)), 0)
		body = body[guts.ChunkSize:]
	}
	n := guts.CompressChunk(tail, key, counter, 0)
	for i := bits.TrailingZeros64(counter); i < bits.Len64(counter); i++ {
		if counter&(1<<i) != 0 {
			n = guts.ParentNode(stack[i], guts.ChainingValue(n), key, 0)
		}
	}
	n.Flags |= guts.FlagRoot
	out := guts.WordsToBytes(guts.CompressNode(n))
	var d castore.Digest
	copy(d[:], out[:len(d)])
	return d
}
