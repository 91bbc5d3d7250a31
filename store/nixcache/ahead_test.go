package nixcache

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"testing"
	"testing/iotest"
)

// The read-ahead passes every byte on in order, whatever the sizes of
// reads on either side, and the source's error after them (not EOF for a
// broken source); closed early, it stops without being read to the end.
func TestAheadReader(t *testing.T) {
	for _, size := range []int{0, 1, aheadSize - 1, aheadSize, aheadSize + 1, 3*aheadSize*aheadBuffers + 17} {
		data := make([]byte, size)
		rand.New(rand.NewSource(int64(size))).Read(data)
		for name, src := range map[string]io.Reader{"whole": bytes.NewReader(data), "byte by byte": iotest.OneByteReader(bytes.NewReader(data))} {
			a := newAheadReader(src)
			got, err := io.ReadAll(iotest.HalfReader(a))
			a.Close()
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%d bytes, %s: got %d bytes, equal %v, %v", size, name, len(got), bytes.Equal(got, data), err)
			}
		}
	}
	broken := errors.New("connection reset")
	data := bytes.Repeat([]byte("x"), aheadSize*2+5)
	a := newAheadReader(io.MultiReader(bytes.NewReader(data), iotest.ErrReader(broken)))
	got, err := io.ReadAll(a)
	a.Close()
	if !errors.Is(err, broken) || !bytes.Equal(got, data) {
		t.Fatalf("broken source: %d bytes, %v; want %d bytes and its error", len(got), err, len(data))
	}
	endless := newAheadReader(rand.New(rand.NewSource(1)))
	if _, err := io.ReadFull(endless, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	endless.Close() // returns: the goroutine stopped
	if _, err := io.ReadAll(endless); !errors.Is(err, errAheadClosed) {
		t.Fatalf("read after Close: %v, want the reader closed", err)
	}
}
