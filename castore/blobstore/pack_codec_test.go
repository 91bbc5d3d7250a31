package blobstore

import "testing"

func TestChunkLocRoundTrip(t *testing.T) {
	for _, l := range []chunkLoc{{0, 0, 0}, {1, 16, 1 << 20}, {1 << 40, 1 << 50, 12345}} {
		got, err := decodeChunkLoc(l.encode())
		if err != nil || got != l {
			t.Fatalf("round trip of %+v = %+v, %v", l, got, err)
		}
	}
	for _, bad := range [][]byte{nil, {0x80}, {1, 2}, {1, 2, 3, 4}} {
		if _, err := decodeChunkLoc(bad); err == nil {
			t.Fatalf("decodeChunkLoc(%x) accepted", bad)
		}
	}
}

// FuzzDecodeChunkLoc: index entries read back from disk never panic, and
// whatever decodes survives a round trip through encode.
func FuzzDecodeChunkLoc(f *testing.F) {
	f.Add(chunkLoc{1, 16, 1 << 20}.encode())
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := decodeChunkLoc(b)
		if err != nil {
			return
		}
		if again, err := decodeChunkLoc(l.encode()); err != nil || again != l {
			t.Fatalf("%x decodes to %+v, which does not round-trip", b, l)
		}
	})
}
