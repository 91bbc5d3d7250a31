package workerproto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// FramedReader reads a framed stream: chunks each led by its length (no
// padding), ended by a chunk of length 0, after which Read returns io.EOF.
// Chunks are read straight into the caller's buffer, so a frame's length
// costs no memory, however large it claims to be.
type FramedReader struct {
	r      *Reader
	left   uint64 // bytes left in the current frame
	eof    bool
	err    error
	header [8]byte
}

// Framed starts reading a framed stream from r.
func (r *Reader) Framed() *FramedReader { return &FramedReader{r: r} }

func (f *FramedReader) Read(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	if f.eof {
		return 0, io.EOF
	}
	for f.left == 0 {
		if _, err := io.ReadFull(f.r.r, f.header[:]); err != nil {
			return 0, f.fail(err)
		}
		f.left = binary.LittleEndian.Uint64(f.header[:])
		if f.left == 0 {
			f.eof = true
			return 0, io.EOF
		}
	}
	if uint64(len(p)) > f.left {
		p = p[:f.left]
	}
	n, err := f.r.r.Read(p)
	f.left -= uint64(n)
	if err != nil && n == 0 {
		return 0, f.fail(err)
	}
	return n, nil
}

func (f *FramedReader) fail(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	f.err = fmt.Errorf("read framed data: %w", err)
	if f.r.err == nil {
		f.r.err = f.err
	}
	return f.err
}

// Drain reads and discards the rest of the stream, so the connection is
// in step for the next request after a consumer stopped early (as Nix's
// FramedSource does when it is destroyed).
func (f *FramedReader) Drain() error {
	_, err := io.Copy(io.Discard, f)
	return err
}

// Done says whether the end frame has been read.
func (f *FramedReader) Done() bool { return f.eof }

// FramedWriter writes a framed stream: each Write is one frame (empty
// writes are dropped, since an empty frame ends the stream); Close writes
// the end frame.
type FramedWriter struct{ w *Writer }

// Framed starts writing a framed stream to w.
func (w *Writer) Framed() *FramedWriter { return &FramedWriter{w: w} }

func (f *FramedWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, f.w.err
	}
	f.w.Uint64(uint64(len(p)))
	return f.w.Write(p)
}

// Close ends the stream.
func (f *FramedWriter) Close() error {
	f.w.Uint64(0)
	return f.w.err
}

// ErrProtocol wraps errors for bytes that do not follow the protocol.
var ErrProtocol = errors.New("protocol error")
