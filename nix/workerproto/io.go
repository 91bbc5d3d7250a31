package workerproto

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
)

// Bounds of what one read may ask for. A store path is at most 211 bytes
// after the store directory; settings, signatures and derivation
// environments are the long strings a client sends inline.
const (
	MaxPathLen   = 4096
	MaxStringLen = 16 << 20
	MaxListLen   = 1 << 20
	// DefaultBudget is how many bytes the strings of one request may add
	// up to before the request is refused.
	DefaultBudget = 256 << 20
)

// ErrTooLarge is wrapped by errors for lengths, counts or totals past the
// bounds.
var ErrTooLarge = errors.New("too large")

// Reader reads protocol values. Errors are sticky: after the first one
// every read returns zero values and Err reports it, so a request's fields
// can be read in a row and checked once.
type Reader struct {
	r      *bufio.Reader
	err    error
	budget int64
	buf    [8]byte
}

// NewReader reads from r (buffered unless r is a *bufio.Reader already).
func NewReader(r io.Reader) *Reader {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	return &Reader{r: br, budget: DefaultBudget}
}

// Err is the first error met, nil if none.
func (r *Reader) Err() error { return r.err }

// ResetBudget starts a new request: its strings may add up to n bytes.
func (r *Reader) ResetBudget(n int64) { r.budget = n }

// Buffered is the underlying buffered reader, positioned after the last
// value read, for streams that follow a request unframed.
func (r *Reader) Buffered() *bufio.Reader { return r.r }

func (r *Reader) fail(what string, err error) {
	if r.err == nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		r.err = fmt.Errorf("read %s: %w", what, err)
	}
}

// Uint64 reads one integer.
func (r *Reader) Uint64(what string) uint64 {
	if r.err != nil {
		return 0
	}
	if _, err := io.ReadFull(r.r, r.buf[:]); err != nil {
		r.fail(what, err)
		return 0
	}
	return binary.LittleEndian.Uint64(r.buf[:])
}

// Bool reads an integer as a flag; anything but 0 and 1 is an error, as
// it means the stream is out of step.
func (r *Reader) Bool(what string) bool {
	v := r.Uint64(what)
	if v > 1 {
		r.fail(what, fmt.Errorf("flag is %d, not 0 or 1", v))
	}
	return v == 1
}

// Bytes reads a string of at most max bytes.
func (r *Reader) Bytes(what string, max int) []byte {
	n := r.Uint64(what)
	if r.err != nil {
		return nil
	}
	if n > uint64(max) {
		r.fail(what, fmt.Errorf("length %d: %w (at most %d)", n, ErrTooLarge, max))
		return nil
	}
	if int64(n) > r.budget {
		r.fail(what, fmt.Errorf("request %w: its strings exceed %d bytes", ErrTooLarge, DefaultBudget))
		return nil
	}
	r.budget -= int64(n)
	b := make([]byte, n)
	if _, err := io.ReadFull(r.r, b); err != nil {
		r.fail(what, err)
		return nil
	}
	r.padding(what, n)
	return b
}

func (r *Reader) padding(what string, n uint64) {
	if pad := (8 - n%8) % 8; pad > 0 && r.err == nil {
		if _, err := io.ReadFull(r.r, r.buf[:pad]); err != nil {
			r.fail(what, err)
			return
		}
		for _, c := range r.buf[:pad] {
			if c != 0 {
				r.fail(what, errors.New("non-zero padding"))
				return
			}
		}
	}
}

// String reads a string of at most MaxStringLen bytes.
func (r *Reader) String(what string) string { return string(r.Bytes(what, MaxStringLen)) }

// Path reads a string short enough to be a store path.
func (r *Reader) Path(what string) string { return string(r.Bytes(what, MaxPathLen)) }

// count reads a list's length.
func (r *Reader) count(what string) int {
	n := r.Uint64(what)
	if n > MaxListLen {
		r.fail(what, fmt.Errorf("%d items: %w (at most %d)", n, ErrTooLarge, MaxListLen))
		return 0
	}
	return int(n)
}

// Strings reads a list of strings, each of at most max bytes.
func (r *Reader) Strings(what string, max int) []string {
	n := r.count(what)
	out := make([]string, 0, min(n, 1024))
	for i := 0; i < n && r.err == nil; i++ {
		out = append(out, string(r.Bytes(what, max)))
	}
	if r.err != nil {
		return nil
	}
	return out
}

// Paths reads a list of path-sized strings.
func (r *Reader) Paths(what string) []string { return r.Strings(what, MaxPathLen) }

// StringMap reads a list of key/value pairs.
func (r *Reader) StringMap(what string) map[string]string {
	n := r.count(what)
	out := make(map[string]string, min(n, 1024))
	for i := 0; i < n && r.err == nil; i++ {
		k := r.String(what)
		out[k] = r.String(what)
	}
	if r.err != nil {
		return nil
	}
	return out
}

// Writer writes protocol values into a buffer; Flush sends them. Errors
// are sticky, as the Reader's.
type Writer struct {
	w   *bufio.Writer
	err error
	buf [8]byte
}

// NewWriter writes to w through a buffer.
func NewWriter(w io.Writer) *Writer { return &Writer{w: bufio.NewWriterSize(w, 32<<10)} }

// Err is the first error met.
func (w *Writer) Err() error { return w.err }

// Flush sends what is buffered.
func (w *Writer) Flush() error {
	if w.err == nil {
		w.err = w.w.Flush()
	}
	return w.err
}

// Write writes raw bytes (a NAR that follows a reply unframed).
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	n, err := w.w.Write(p)
	w.err = err
	return n, err
}

// Uint64 writes one integer.
func (w *Writer) Uint64(v uint64) {
	binary.LittleEndian.PutUint64(w.buf[:], v)
	w.Write(w.buf[:])
}

// Bool writes a flag.
func (w *Writer) Bool(b bool) {
	if b {
		w.Uint64(1)
	} else {
		w.Uint64(0)
	}
}

var zeros [8]byte

// String writes a string with its padding.
func (w *Writer) String(s string) {
	w.Uint64(uint64(len(s)))
	w.w.WriteString(s)
	if pad := (8 - len(s)%8) % 8; pad > 0 {
		w.Write(zeros[:pad])
	}
}

// Strings writes a list of strings.
func (w *Writer) Strings(ss []string) {
	w.Uint64(uint64(len(ss)))
	for _, s := range ss {
		w.String(s)
	}
}

// StringSet writes a set of strings: sorted, as Nix's std::set goes on
// the wire.
func (w *Writer) StringSet(ss []string) {
	sorted := append([]string(nil), ss...)
	sort.Strings(sorted)
	w.Strings(sorted)
}

// Error writes an error as protocols 1.26 and later carry it, after
// StderrError: Nix's serialised Error with no position and no traces.
func (w *Writer) Error(msg string) {
	w.Uint64(StderrError)
	w.String("Error")
	w.Uint64(LvlError)
	w.String("Error")
	w.String(msg)
	w.Uint64(0) // no position
	w.Uint64(0) // no traces
}

// Field is a value of an activity or a result: an integer or a string.
type Field struct {
	Int    uint64
	Str    string
	IsText bool
}

// IntField and TextField make Fields.
func IntField(v uint64) Field  { return Field{Int: v} }
func TextField(s string) Field { return Field{Str: s, IsText: true} }

// Fields writes a list of fields, each led by its type (0 integer, 1
// string).
func (w *Writer) Fields(fs []Field) {
	w.Uint64(uint64(len(fs)))
	for _, f := range fs {
		if f.IsText {
			w.Uint64(1)
			w.String(f.Str)
		} else {
			w.Uint64(0)
			w.Uint64(f.Int)
		}
	}
}
