package nixcache

import (
	"errors"
	"io"
	"sync"
)

// aheadReader runs a reader (a NAR's decompressor) on a goroutine of its
// own, a few buffers ahead of the consumer: an ingest is a chain of
// decompressing, hashing (sha256 of the NAR, BLAKE3 of chunks and blobs)
// and chunking, and one large path would otherwise run it all on one core
// while the other waits.
type aheadReader struct {
	full chan []byte // filled buffers, closed after the last
	free chan []byte
	err  error // why full was closed; read after it is
	stop chan struct{}
	done chan struct{}

	buf, rest []byte   // the buffer being read, and what is left of it
	all       [][]byte // every buffer, given back to aheadBufs on Close
	closed    bool
}

// aheadBufs are reused by the NARs fetched after.
var aheadBufs = sync.Pool{New: func() any { return make([]byte, aheadSize) }}

const (
	aheadBuffers = 4
	aheadSize    = 256 << 10
)

func newAheadReader(r io.Reader) *aheadReader {
	a := &aheadReader{full: make(chan []byte, aheadBuffers), free: make(chan []byte, aheadBuffers),
		stop: make(chan struct{}), done: make(chan struct{})}
	for range aheadBuffers {
		b := aheadBufs.Get().([]byte)
		a.all = append(a.all, b)
		a.free <- b
	}
	go a.fill(r)
	return a
}

func (a *aheadReader) fill(r io.Reader) {
	defer close(a.done)
	defer close(a.full)
	for {
		var b []byte
		select {
		case b = <-a.free:
		case <-a.stop:
			a.err = errAheadClosed
			return
		}
		n, err := io.ReadFull(r, b)
		if n > 0 {
			select {
			case a.full <- b[:n]:
			case <-a.stop:
				a.err = errAheadClosed
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				err = io.EOF // a short last buffer
			}
			a.err = err
			return
		}
	}
}

var errAheadClosed = errors.New("read ahead: closed")

func (a *aheadReader) Read(p []byte) (int, error) {
	if a.closed {
		return 0, errAheadClosed // its buffers are others' now
	}
	if len(a.rest) == 0 {
		if a.buf != nil {
			a.free <- a.buf[:cap(a.buf)] // never blocks: there are as many slots as buffers
			a.buf = nil
		}
		b, ok := <-a.full
		if !ok {
			return 0, a.err
		}
		a.buf, a.rest = b, b
	}
	n := copy(p, a.rest)
	a.rest = a.rest[n:]
	return n, nil
}

// Close stops the goroutine and waits for it, so the reader it reads is
// no longer used when Close returns; the caller unblocks a read it may
// be waiting in (cancelling the request) first.
func (a *aheadReader) Close() error {
	if a.all == nil {
		return nil
	}
	close(a.stop)
	<-a.done
	for _, b := range a.all {
		aheadBufs.Put(b)
	}
	a.all, a.buf, a.rest, a.closed = nil, nil, nil, true
	return nil
}
