package blobstore

import (
	"encoding/binary"
	"errors"
)

// Index records of the pack store. Varints keep an entry of a small chunk
// in a small pack at a few bytes: the index holds one per chunk.

// chunkLoc is where a chunk's bytes are: pack number, offset, length.
type chunkLoc struct {
	pack uint64
	off  int64
	size int64
}

func (l chunkLoc) encode() []byte {
	buf := make([]byte, 0, 3*binary.MaxVarintLen64)
	buf = binary.AppendUvarint(buf, l.pack)
	buf = binary.AppendUvarint(buf, uint64(l.off))
	return binary.AppendUvarint(buf, uint64(l.size))
}

func decodeChunkLoc(b []byte) (chunkLoc, error) {
	var v [3]uint64
	for i := range v {
		x, n := binary.Uvarint(b)
		if n <= 0 {
			return chunkLoc{}, errors.New("corrupt chunk index entry")
		}
		v[i], b = x, b[n:]
	}
	if len(b) != 0 || v[1] > 1<<62 || v[2] > 1<<40 {
		return chunkLoc{}, errors.New("corrupt chunk index entry")
	}
	return chunkLoc{pack: v[0], off: int64(v[1]), size: int64(v[2])}, nil
}

// extent says a blob's bytes are exactly a pack file's: pack id and size.
type extent struct {
	pack uint64
	size int64
}

func (e extent) encode() []byte {
	return chunkLoc{pack: e.pack, size: e.size}.encode()
}

func decodeExtent(b []byte) (extent, error) {
	l, err := decodeChunkLoc(b)
	if err != nil || l.off != 0 {
		return extent{}, errors.New("corrupt extent index entry")
	}
	return extent{pack: l.pack, size: l.size}, nil
}
