// Package nar reads and writes Nix ARchives, the canonical serialisation
// Nix hashes store paths by, as a stream: neither side ever holds a whole
// file in memory.
//
// Wire format: every token is a string, a little-endian uint64 length, the
// bytes, then zero padding to a multiple of 8.
//
//	nar     = "nix-archive-1" node
//	node    = "(" "type" ( regular | symlink | directory ) ")"
//	regular = "regular" [ "executable" "" ] "contents" <data>
//	symlink = "symlink" "target" <target>
//	directory = "directory" { "entry" "(" "name" <name> "node" node ")" }
//
// Directory entries are strictly ascending by raw bytes; names are
// non-empty, at most 255 bytes, not "." or "..", without "/" or NUL;
// symlink targets are non-empty, at most 4095 bytes, without NUL. Only this
// canonical form is accepted, since two encodings of one tree would give
// two NAR hashes.
//
// Writer emits a NAR from calls that mirror the tree (Directory, Entry,
// Leave, File, Symlink). Reader yields the nodes of a NAR in order, each
// file's contents as a reader limited to that file.
package nar

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
)

// Tokens of the format.
const (
	magic = "nix-archive-1"
	// MaxNameLen and MaxTargetLen match castore's limits, which are what a
	// filesystem can hold.
	MaxNameLen   = 255
	MaxTargetLen = 4095
)

// Writer writes one NAR. Call exactly one node method (File, Symlink or
// Directory) for the root; inside a directory call Entry then one node
// method per child, in ascending name order, and Leave to close it. Close
// checks that the NAR is complete and flushes it; nothing is buffered
// beyond a small write buffer.
type Writer struct {
	w   *bufio.Writer
	err error
	// hash is the destination when that is a hash.Hash (see NewWriter);
	// copyBuf carries file contents into it past the buffer.
	hash    hash.Hash
	copyBuf []byte
	// stack holds the names of the last entry of each open directory, so
	// ordering can be checked; its length is the nesting depth.
	stack    []wframe
	needNode bool // a node must come next (root, or after Entry)
	started  bool
	done     bool
	scratch  [8]byte
}

type wframe struct {
	prev    []byte
	hasPrev bool
	inEntry bool // the current child entry is open (its node not written)
}

// NewWriter starts a NAR on w. A hash.Hash gets a small buffer, and file
// contents that do not fit in it are copied into the hash directly: writes
// to a hash cost no system call, and NARs are hashed one per store path
// computed (evaluation hashes every source path used as a string), where
// the 64 KB buffer would be most of the time and memory a small file takes.
func NewWriter(w io.Writer) *Writer {
	if h, ok := w.(hash.Hash); ok {
		return &Writer{w: bufio.NewWriterSize(h, hashBufSize), hash: h, needNode: true}
	}
	return &Writer{w: bufio.NewWriterSize(w, bufSize), needNode: true}
}

const (
	// hashBufSize holds the tokens of a few directory entries, or the NAR
	// of a small file whole.
	hashBufSize = 512
	// bufSize is the buffer of other destinations, and so how much of a
	// file is read at a time.
	bufSize = 64 << 10
)

var zeros [8]byte

func (w *Writer) token(b []byte) {
	binary.LittleEndian.PutUint64(w.scratch[:], uint64(len(b)))
	w.w.Write(w.scratch[:])
	w.w.Write(b)
	if p := padLen(uint64(len(b))); p > 0 {
		w.w.Write(zeros[:p])
	}
}

func (w *Writer) str(s string) {
	binary.LittleEndian.PutUint64(w.scratch[:], uint64(len(s)))
	w.w.Write(w.scratch[:])
	w.w.WriteString(s)
	if p := padLen(uint64(len(s))); p > 0 {
		w.w.Write(zeros[:p])
	}
}

func padLen(n uint64) int { return int((8 - n%8) % 8) }

// beginNode checks that a node may be written here and writes what comes
// before it.
func (w *Writer) beginNode(what string) error {
	if w.err != nil {
		return w.err
	}
	if !w.needNode {
		if w.done {
			return w.fail("write %s: the NAR's root node is already complete", what)
		}
		return w.fail("write %s: inside a directory, call Entry first", what)
	}
	w.needNode = false
	if !w.started {
		w.started = true
		w.str(magic)
	}
	w.str("(")
	w.str("type")
	return nil
}

// endNode closes a non-directory node and the entry holding it.
func (w *Writer) endNode() error {
	w.str(")")
	w.closeEntry()
	return w.flushErr()
}

func (w *Writer) closeEntry() {
	if len(w.stack) == 0 {
		w.done = true
		return
	}
	top := &w.stack[len(w.stack)-1]
	if top.inEntry {
		top.inEntry = false
		w.str(")")
	}
}

func (w *Writer) fail(format string, args ...any) error {
	w.err = fmt.Errorf("nar writer: "+format, args...)
	return w.err
}

func (w *Writer) flushErr() error {
	// bufio.Writer keeps the first write error and returns it from any
	// later Write; surface it promptly.
	if _, err := w.w.Write(nil); err != nil {
		w.err = fmt.Errorf("nar writer: %w", err)
	}
	return w.err
}

// File writes a regular file of size bytes read from r. r must yield
// exactly size bytes: fewer is io.ErrUnexpectedEOF, more is an error too, so
// a stored size that disagrees with the contents is never written silently.
func (w *Writer) File(executable bool, size uint64, r io.Reader) error {
	if r == nil {
		r = eofReader{}
	}
	if err := w.beginNode("file"); err != nil {
		return err
	}
	w.str("regular")
	if executable {
		w.str("executable")
		w.str("")
	}
	w.str("contents")
	binary.LittleEndian.PutUint64(w.scratch[:], size)
	w.w.Write(w.scratch[:])
	var n int64
	var err error
	if w.hash != nil && size > uint64(w.w.Available()) {
		n, err = w.copyToHash(io.LimitReader(r, int64(size)), size)
	} else {
		n, err = io.Copy(w.w, io.LimitReader(r, int64(size)))
	}
	if err != nil {
		return w.fail("write file contents: %w", err)
	}
	if uint64(n) != size {
		return w.fail("write file contents: got %d bytes, want %d: %w", n, size, io.ErrUnexpectedEOF)
	}
	var one [1]byte
	for {
		m, err := r.Read(one[:])
		if m > 0 {
			return w.fail("write file contents: reader has more than the %d bytes announced", size)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return w.fail("write file contents: %w", err)
		}
	}
	if p := padLen(size); p > 0 {
		w.w.Write(zeros[:p])
	}
	return w.endNode()
}

// copyToHash copies file contents of size bytes past the buffer into the
// hash, read in pieces as large as other destinations' buffer reads them.
// The piece buffer grows with the largest file so far, so a NAR of small
// files does not allocate a large one.
func (w *Writer) copyToHash(r io.Reader, size uint64) (int64, error) {
	if err := w.w.Flush(); err != nil {
		return 0, err
	}
	if n := int(min(size, bufSize)); len(w.copyBuf) < n {
		w.copyBuf = make([]byte, max(n, min(2*len(w.copyBuf), bufSize)))
	}
	return io.CopyBuffer(w.hash, r, w.copyBuf)
}

// Symlink writes a symlink to target.
func (w *Writer) Symlink(target []byte) error {
	if r := validateTarget(target); r != "" {
		return w.fail("write symlink: %s", r)
	}
	if err := w.beginNode("symlink"); err != nil {
		return err
	}
	w.str("symlink")
	w.str("target")
	w.token(target)
	return w.endNode()
}

// Directory opens a directory; its children follow as Entry + node, and
// Leave closes it.
func (w *Writer) Directory() error {
	if err := w.beginNode("directory"); err != nil {
		return err
	}
	w.str("directory")
	w.stack = append(w.stack, wframe{})
	return w.flushErr()
}

// Entry starts the next child of the innermost open directory; names must
// be strictly ascending.
func (w *Writer) Entry(name []byte) error {
	if w.err != nil {
		return w.err
	}
	if len(w.stack) == 0 || w.needNode {
		return w.fail("entry %q: no open directory to add it to", name)
	}
	if r := validateName(name); r != "" {
		return w.fail("entry %q: %s", name, r)
	}
	top := &w.stack[len(w.stack)-1]
	if top.hasPrev {
		switch c := bytes.Compare(top.prev, name); {
		case c == 0:
			return w.fail("entry %q: duplicate name", name)
		case c > 0:
			return w.fail("entry %q: not sorted, comes after %q", name, top.prev)
		}
	}
	top.prev = append(top.prev[:0], name...)
	top.hasPrev = true
	top.inEntry = true
	w.str("entry")
	w.str("(")
	w.str("name")
	w.token(name)
	w.str("node")
	w.needNode = true
	return nil
}

// Leave closes the innermost open directory.
func (w *Writer) Leave() error {
	if w.err != nil {
		return w.err
	}
	if len(w.stack) == 0 || w.needNode {
		return w.fail("leave: no open directory (or an entry without a node)")
	}
	w.stack = w.stack[:len(w.stack)-1]
	w.str(")")
	w.closeEntry()
	return w.flushErr()
}

// Close checks that the root node is complete and flushes the buffer. It
// does not close the underlying writer.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	if !w.done {
		return w.fail("close: NAR incomplete (%d directories still open)", len(w.stack))
	}
	if err := w.w.Flush(); err != nil {
		w.err = fmt.Errorf("nar writer: %w", err)
	}
	return w.err
}

func validateName(name []byte) string {
	switch {
	case len(name) == 0:
		return "empty name"
	case len(name) > MaxNameLen:
		return fmt.Sprintf("name longer than %d bytes", MaxNameLen)
	case bytes.Equal(name, []byte(".")) || bytes.Equal(name, []byte("..")):
		return "name is . or .."
	case bytes.IndexByte(name, '/') >= 0:
		return "name contains /"
	case bytes.IndexByte(name, 0) >= 0:
		return "name contains NUL"
	}
	return ""
}

func validateTarget(t []byte) string {
	switch {
	case len(t) == 0:
		return "empty symlink target"
	case len(t) > MaxTargetLen:
		return fmt.Sprintf("symlink target longer than %d bytes", MaxTargetLen)
	case bytes.IndexByte(t, 0) >= 0:
		return "symlink target contains NUL"
	}
	return ""
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }
