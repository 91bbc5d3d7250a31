package nar

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

var errTrailing = errors.New("trailing data after the end of the NAR")

// Kind is the kind of a Node the Reader yields.
type Kind uint8

const (
	KindFile Kind = iota + 1
	KindSymlink
	KindDirectory
	// KindEndDirectory marks the end of the directory at Path: every child
	// has been yielded. Consumers that build directories bottom-up (castore
	// ingestion) finish a directory here.
	KindEndDirectory
)

func (k Kind) String() string {
	switch k {
	case KindFile:
		return "file"
	case KindSymlink:
		return "symlink"
	case KindDirectory:
		return "directory"
	case KindEndDirectory:
		return "end of directory"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Node is one step of a NAR walk. It is only valid until the next call to
// Next, which reuses it.
type Node struct {
	Kind Kind
	// path is the slash-separated path from the root, "" for the root: a
	// view of the reader's buffer, turned into a string only when asked
	// for, since copying it for every node would cost the square of the
	// nesting depth.
	path []byte
	// Name is the last component of Path, nil for the root.
	Name []byte
	// Depth is 0 for the root, 1 for its entries and so on.
	Depth int

	Executable bool   // KindFile
	Size       uint64 // KindFile
	Target     []byte // KindSymlink
	// Contents reads the file's bytes (KindFile), at most Size of them; a
	// NAR that ends early gives io.ErrUnexpectedEOF. Next skips whatever
	// was not read.
	Contents io.Reader
}

// Path is the slash-separated path from the root, "" for the root.
func (n *Node) Path() string { return string(n.path) }

type readState uint8

const (
	stateMagic readState = iota
	stateNode
	stateFileEnd // contents being read; padding and ")" follow
	stateDirBody
	stateEnd
	stateDone
)

// dirFrame is an open directory.
type dirFrame struct {
	name    []byte // nil for the root
	pathLen int    // len(path) before this directory's name was appended
	prev    []byte // last entry name, for the ordering check
	hasPrev bool
}

// Reader yields the nodes of a NAR, parsing it as a stream and rejecting
// anything but the canonical encoding. It reads its source through a
// buffer, so it may read past the end of the NAR; it then refuses trailing
// data.
type Reader struct {
	r     *bufio.Reader
	off   uint64
	state readState
	err   error
	dirs  []dirFrame
	path  []byte
	node  Node
	// The entry whose node is being read: its name and where the path
	// ended before the name was appended.
	entryName    []byte
	entryPathLen int

	remaining uint64 // contents left of the current file
	fileSize  uint64
	contents  contentsReader
	tok       []byte
	embedded  bool
}

// NewReader reads a NAR from r; the magic is checked by the first Next.
func NewReader(r io.Reader) *Reader {
	br, ok := r.(*bufio.Reader)
	if !ok || br.Size() < 64<<10 {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	nr := &Reader{r: br}
	nr.contents.nr = nr
	return nr
}

// NewEmbeddedReader reads one NAR that is followed by other data in the
// same stream (the Nix daemon protocol, nix-store --export): it consumes
// exactly the NAR's bytes from r and does not check for trailing data, so
// the caller can go on reading r after Next returns io.EOF.
func NewEmbeddedReader(r *bufio.Reader) *Reader {
	nr := &Reader{r: r, embedded: true}
	nr.contents.nr = nr
	return nr
}

// Offset is the number of NAR bytes consumed so far.
func (r *Reader) Offset() uint64 { return r.off }

// Next returns the next node, or io.EOF after the root node is complete
// and the source is exhausted. Any other error is final.
func (r *Reader) Next() (*Node, error) {
	if r.err != nil {
		return nil, r.err
	}
	n, err := r.next()
	if err != nil {
		if err != io.EOF {
			r.err = err
		} else {
			r.err = io.EOF
		}
		return nil, err
	}
	return n, nil
}

func (r *Reader) fail(format string, args ...any) error {
	return fmt.Errorf("nar: at byte %d: "+format, append([]any{r.off}, args...)...)
}

func (r *Reader) next() (*Node, error) {
	for {
		switch r.state {
		case stateMagic:
			if r.off == 0 {
				head, err := r.r.Peek(6)
				if err != nil && err != io.EOF {
					// bufio hands a source's error out once; it is
					// the answer, not something to read past.
					return nil, r.fail("reading NAR magic: %w", err)
				}
				if c := compressedAs(head); c != "" {
					return nil, r.fail("this is %s-compressed data, not a NAR", c)
				}
			}
			if err := r.expect(magic, "NAR magic"); err != nil {
				return nil, err
			}
			r.state = stateNode
		case stateNode:
			return r.readNode()
		case stateFileEnd:
			if r.remaining > 0 {
				if _, err := io.CopyN(io.Discard, &r.contents, int64(r.remaining)); err != nil {
					return nil, err
				}
			}
			if err := r.readPadding(r.fileSize); err != nil {
				return nil, err
			}
			if err := r.expect(")", "end of file node"); err != nil {
				return nil, err
			}
			if err := r.endNode(); err != nil {
				return nil, err
			}
		case stateDirBody:
			t, err := r.readToken(16, "directory entry")
			if err != nil {
				return nil, err
			}
			switch string(t) {
			case ")":
				return r.leaveDir()
			case "entry":
				if err := r.readEntryHead(); err != nil {
					return nil, err
				}
				r.state = stateNode
			default:
				return nil, r.fail("expected \"entry\" or \")\" in directory %q, got %q", r.path, t)
			}
		case stateEnd:
			if r.embedded {
				r.state = stateDone
				return nil, io.EOF
			}
			if _, err := r.r.Peek(1); err == nil {
				return nil, r.fail("%w", errTrailing)
			} else if err != io.EOF {
				return nil, r.fail("check end of NAR: %w", err)
			}
			r.state = stateDone
			return nil, io.EOF
		case stateDone:
			return nil, io.EOF
		}
	}
}

func (r *Reader) readEntryHead() error {
	if err := r.expect("(", "entry"); err != nil {
		return err
	}
	if err := r.expect("name", "entry"); err != nil {
		return err
	}
	name, err := r.readToken(MaxNameLen, "entry name")
	if err != nil {
		return err
	}
	if why := validateName(name); why != "" {
		return r.fail("invalid entry name %q in directory %q: %s", name, r.path, why)
	}
	top := &r.dirs[len(r.dirs)-1]
	if top.hasPrev {
		switch c := bytes.Compare(top.prev, name); {
		case c == 0:
			return r.fail("duplicate entry %q in directory %q", name, r.path)
		case c > 0:
			return r.fail("entries of directory %q not sorted: %q comes after %q", r.path, name, top.prev)
		}
	}
	top.prev = append(top.prev[:0], name...)
	top.hasPrev = true
	if err := r.expect("node", "entry"); err != nil {
		return err
	}
	r.entryName = top.prev
	r.entryPathLen = len(r.path)
	if len(r.path) > 0 {
		r.path = append(r.path, '/')
	}
	r.path = append(r.path, top.prev...)
	return nil
}

// readNode reads a node up to its contents (files), its end (symlinks) or
// its first entry (directories).
func (r *Reader) readNode() (*Node, error) {
	if err := r.expect("(", "node"); err != nil {
		return nil, err
	}
	if err := r.expect("type", "node"); err != nil {
		return nil, err
	}
	t, err := r.readToken(16, "node type")
	if err != nil {
		return nil, err
	}
	n := &r.node
	*n = Node{path: r.path, Depth: len(r.dirs)}
	if len(r.dirs) > 0 {
		n.Name = r.entryName
	}
	switch string(t) {
	case "regular":
		t, err := r.readToken(16, "file field")
		if err != nil {
			return nil, err
		}
		if string(t) == "executable" {
			v, err := r.readToken(16, "executable marker")
			if err != nil {
				return nil, err
			}
			if len(v) != 0 {
				return nil, r.fail("file %q: executable marker must be empty, got %q", r.path, v)
			}
			n.Executable = true
			if t, err = r.readToken(16, "file field"); err != nil {
				return nil, err
			}
		}
		if string(t) != "contents" {
			return nil, r.fail("file %q: expected \"contents\", got %q", r.path, t)
		}
		size, err := r.readUint64("file size")
		if err != nil {
			return nil, err
		}
		n.Kind, n.Size, n.Contents = KindFile, size, &r.contents
		r.fileSize, r.remaining = size, size
		r.state = stateFileEnd
		return n, nil
	case "symlink":
		if err := r.expect("target", "symlink"); err != nil {
			return nil, err
		}
		target, err := r.readToken(MaxTargetLen, "symlink target")
		if err != nil {
			return nil, err
		}
		if why := validateTarget(target); why != "" {
			return nil, r.fail("symlink %q: %s", r.path, why)
		}
		// Clone before the next token overwrites the buffer.
		n.Kind, n.Target = KindSymlink, bytes.Clone(target)
		if err := r.expect(")", "end of symlink node"); err != nil {
			return nil, err
		}
		if err := r.endNode(); err != nil {
			return nil, err
		}
		return n, nil
	case "directory":
		n.Kind = KindDirectory
		d := dirFrame{}
		if len(r.dirs) > 0 {
			d.name, d.pathLen = bytes.Clone(r.entryName), r.entryPathLen
			n.Name = d.name
		}
		r.dirs = append(r.dirs, d)
		r.state = stateDirBody
		return n, nil
	default:
		return nil, r.fail("node %q: unknown type %q", r.path, t)
	}
}

func (r *Reader) leaveDir() (*Node, error) {
	d := r.dirs[len(r.dirs)-1]
	r.dirs = r.dirs[:len(r.dirs)-1]
	n := &r.node
	*n = Node{Kind: KindEndDirectory, path: r.path, Name: d.name, Depth: len(r.dirs)}
	if err := r.closeEntry(d.pathLen); err != nil {
		return nil, err
	}
	return n, nil
}

// endNode is called after a file or symlink node's closing ")".
func (r *Reader) endNode() error { return r.closeEntry(r.entryPathLen) }

// closeEntry reads the ")" of the entry holding the node just finished, or
// ends the NAR after the root.
func (r *Reader) closeEntry(pathLen int) error {
	if len(r.dirs) == 0 {
		r.state = stateEnd
		return nil
	}
	if err := r.expect(")", "end of entry"); err != nil {
		return err
	}
	r.path = r.path[:pathLen]
	r.state = stateDirBody
	return nil
}

func (r *Reader) readFull(b []byte, what string) error {
	n, err := io.ReadFull(r.r, b)
	r.off += uint64(n)
	if err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return r.fail("truncated NAR, reading %s: %w", what, io.ErrUnexpectedEOF)
		}
		return r.fail("reading %s: %w", what, err)
	}
	return nil
}

func (r *Reader) readUint64(what string) (uint64, error) {
	var b [8]byte
	if err := r.readFull(b[:], what); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}

func (r *Reader) readPadding(n uint64) error {
	p := padLen(n)
	if p == 0 {
		return nil
	}
	var b [8]byte
	if err := r.readFull(b[:p], "padding"); err != nil {
		return err
	}
	if b != [8]byte{} {
		return r.fail("non-zero padding")
	}
	return nil
}

// readToken reads a string of at most max bytes into a reused buffer.
func (r *Reader) readToken(max int, what string) ([]byte, error) {
	n, err := r.readUint64(what)
	if err != nil {
		return nil, err
	}
	if n > uint64(max) {
		return nil, r.fail("%s of %d bytes is longer than the %d allowed", what, n, max)
	}
	if cap(r.tok) < int(n) {
		r.tok = make([]byte, n, max)
	}
	r.tok = r.tok[:n]
	if err := r.readFull(r.tok, what); err != nil {
		return nil, err
	}
	if err := r.readPadding(n); err != nil {
		return nil, err
	}
	return r.tok, nil
}

func (r *Reader) expect(want, what string) error {
	t, err := r.readToken(len(want)+16, what)
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) && r.off == 0 {
			return r.fail("empty input, not a NAR: %w", io.ErrUnexpectedEOF)
		}
		return err
	}
	if string(t) != want {
		if want == magic {
			return r.fail("bad NAR magic %q, want %q", t, magic)
		}
		return r.fail("%s at %q: expected %q, got %q", what, r.path, want, t)
	}
	return nil
}

// contentsReader is Node.Contents: reads the current file, never past it.
type contentsReader struct{ nr *Reader }

func (c *contentsReader) Read(p []byte) (int, error) {
	r := c.nr
	if r.remaining == 0 {
		return 0, io.EOF
	}
	if uint64(len(p)) > r.remaining {
		p = p[:r.remaining]
	}
	n, err := r.r.Read(p)
	r.off += uint64(n)
	r.remaining -= uint64(n)
	if err == io.EOF {
		if r.remaining > 0 {
			return n, r.fail("truncated NAR in contents of %q (%d bytes missing): %w", r.path, r.remaining, io.ErrUnexpectedEOF)
		}
		err = nil
	}
	return n, err
}

// WriteTo lets io.Copy move contents in the buffer's chunks without an
// intermediate copy.
func (c *contentsReader) WriteTo(w io.Writer) (int64, error) {
	r := c.nr
	var total int64
	for r.remaining > 0 {
		if _, err := r.r.Peek(1); err != nil {
			if err == io.EOF {
				return total, r.fail("truncated NAR in contents of %q (%d bytes missing): %w", r.path, r.remaining, io.ErrUnexpectedEOF)
			}
			return total, r.fail("reading contents of %q: %w", r.path, err)
		}
		n := r.r.Buffered()
		if uint64(n) > r.remaining {
			n = int(r.remaining)
		}
		b, _ := r.r.Peek(n)
		m, err := w.Write(b)
		r.r.Discard(m)
		r.off += uint64(m)
		r.remaining -= uint64(m)
		total += int64(m)
		if err != nil {
			return total, err
		}
		if m < n {
			return total, io.ErrShortWrite
		}
	}
	return total, nil
}

// compressedAs names the compression whose magic head starts with: the
// NAR magic would otherwise be read as a length of a few exabytes.
func compressedAs(head []byte) string {
	for _, c := range []struct{ name, magic string }{
		{"gzip", "\x1f\x8b"}, {"xz", "\xfd7zXZ\x00"}, {"zstd", "\x28\xb5\x2f\xfd"}, {"bzip2", "BZh"},
	} {
		if c.magic != "" && strings.HasPrefix(string(head), c.magic) {
			return c.name
		}
	}
	return ""
}
