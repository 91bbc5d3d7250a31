// Package narcastore converts between NAR streams and castore trees.
//
// Ingest reads a NAR once: file contents go straight into
// BlobService.Put, directories are assembled as the NAR leaves them (leaves
// first, which is the order DirectoryService.PutMultiple wants), and the
// NAR's sha256 and size are computed from the same bytes. Render writes the
// NAR of a castore node, children of a directory in merged byte order of
// the three lists, streaming each blob; CalculateNAR is Render into a
// hasher. Neither side holds a whole file in memory.
//
// Nodes passed in and returned are anonymous (empty name): the name of a
// root is the caller's business (a store path basename in a PathInfo).
package narcastore

import (
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"strings"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/nix/nar"
)

type options struct {
	scan   io.Writer
	limits Limits
}

// Limits bound the NARs Ingest accepts: the tree's shape (castore.Limits)
// and the NAR's size in bytes (zero: no limit).
type Limits struct {
	castore.Limits
	MaxNARSize uint64
}

// LimitNARSize names the NAR size limit, as the daemon's flag does.
const LimitNARSize = "max-nar-size"

// WithLimits makes Ingest refuse a NAR over l with a *castore.LimitError,
// as soon as the NAR passes the limit (a NAR nested a million deep is
// refused at the depth limit, not after it was all read).
func WithLimits(l Limits) Option { return func(o *options) { o.limits = l } }

// sizeLimited fails a read that takes the NAR past max bytes.
type sizeLimited struct {
	r      io.Reader
	n, max uint64
}

func (s *sizeLimited) Read(b []byte) (int, error) {
	if s.n > s.max {
		return 0, &castore.LimitError{Limit: LimitNARSize, Max: s.max, What: fmt.Sprintf("NAR is more than %d bytes", s.max)}
	}
	if rest := s.max - s.n + 1; uint64(len(b)) > rest {
		b = b[:rest]
	}
	n, err := s.r.Read(b)
	s.n += uint64(n)
	if s.n > s.max {
		return n, &castore.LimitError{Limit: LimitNARSize, Max: s.max, What: fmt.Sprintf("NAR is more than %d bytes", s.max)}
	}
	return n, err
}

// Option configures Ingest.
type Option func(*options)

// WithScanner makes Ingest write every NAR byte to w as well, e.g. a
// refscan.Scanner: scanning the serialisation is exactly what Nix does, so
// hashes in file names, symlink targets and contents are all found.
func WithScanner(w io.Writer) Option { return func(o *options) { o.scan = w } }

// countingHash feeds the NAR's sha256 and counts its bytes.
type countingHash struct {
	h    hash.Hash
	n    uint64
	scan io.Writer
	err  error
}

func (c *countingHash) Write(p []byte) (int, error) {
	c.h.Write(p)
	c.n += uint64(len(p))
	if c.scan != nil && c.err == nil {
		_, c.err = c.scan.Write(p)
	}
	return len(p), nil
}

// hashPipe runs the NAR's sha256 (and the reference scan) on another
// goroutine, so it overlaps with the BLAKE3 of the blobs instead of adding
// to it. Bytes are copied into a small ring of buffers; when the hasher
// falls behind, the reader waits, so memory stays bounded.
type hashPipe struct {
	c    countingHash
	full chan []byte
	free chan []byte
	done chan struct{}
}

const (
	pipeBufs    = 8
	pipeBufSize = 64 << 10
)

func newHashPipe(scan io.Writer) *hashPipe {
	p := &hashPipe{
		c:    countingHash{h: sha256.New(), scan: scan},
		full: make(chan []byte, pipeBufs),
		free: make(chan []byte, pipeBufs),
		done: make(chan struct{}),
	}
	for range pipeBufs {
		p.free <- make([]byte, 0, pipeBufSize)
	}
	go func() {
		defer close(p.done)
		for b := range p.full {
			p.c.Write(b)
			p.free <- b[:0]
		}
	}()
	return p
}

func (p *hashPipe) Write(b []byte) {
	for len(b) > 0 {
		buf := <-p.free
		n := min(len(b), cap(buf))
		p.full <- append(buf, b[:n]...)
		b = b[n:]
	}
}

// finish stops the goroutine; it must be called exactly once.
func (p *hashPipe) finish() (uint64, [32]byte, error) {
	close(p.full)
	<-p.done
	var sum [32]byte
	p.c.h.Sum(sum[:0])
	return p.c.n, sum, p.c.err
}

// teeReader hashes what it reads, before the NAR parser sees it.
type teeReader struct {
	r io.Reader
	p *hashPipe
}

func (t *teeReader) Read(b []byte) (int, error) {
	n, err := t.r.Read(b)
	if n > 0 {
		t.p.Write(b[:n])
	}
	return n, err
}

type building struct {
	dir     *castorev1.Directory
	name    []byte
	entries int
}

// Ingest reads a NAR from r into blobs and dirs and returns its root node
// (anonymous), the NAR's size and sha256. Directories enter dirs in one
// PutMultiple only once the whole NAR has been read and found valid, so on
// any error dirs is unchanged; blobs written before the error stay as
// orphans, which castore tolerates.
func Ingest(ctx context.Context, r io.Reader, blobs castore.BlobService, dirs castore.DirectoryService, opts ...Option) (*castorev1.Node, uint64, [32]byte, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	pipe := newHashPipe(o.scan)
	finished := false
	defer func() {
		if !finished {
			pipe.finish()
		}
	}()
	lim := o.limits
	if lim.MaxNARSize > 0 {
		r = &sizeLimited{r: r, max: lim.MaxNARSize}
	}
	nr := nar.NewReader(&teeReader{r: r, p: pipe})

	var (
		root   *castorev1.Node
		stack  []building
		putter castore.DirectoryPutter
		sum    [32]byte
	)
	fail := func(err error) (*castorev1.Node, uint64, [32]byte, error) {
		return nil, 0, sum, fmt.Errorf("ingest NAR: %w", err)
	}
	// place puts a finished child into its parent, or makes it the root.
	place := func(n *castorev1.Node) {
		if len(stack) == 0 {
			root = n
			return
		}
		d := stack[len(stack)-1].dir
		switch {
		case n.GetDirectory() != nil:
			d.Directories = append(d.Directories, n.GetDirectory())
		case n.GetFile() != nil:
			d.Files = append(d.Files, n.GetFile())
		case n.GetSymlink() != nil:
			d.Symlinks = append(d.Symlinks, n.GetSymlink())
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		n, err := nr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fail(err)
		}
		if err := checkLimits(lim, n, stack); err != nil {
			return fail(err)
		}
		// The NAR reader checked entry names and order, so appending to
		// each list keeps it sorted.
		name := append([]byte(nil), n.Name...)
		switch n.Kind {
		case nar.KindFile:
			d, err := putBlob(ctx, blobs, n)
			if err != nil {
				return fail(err)
			}
			place(&castorev1.Node{Node: &castorev1.Node_File{File: &castorev1.FileNode{
				Name: name, Digest: d.Bytes(), Size: n.Size, Executable: n.Executable}}})
		case nar.KindSymlink:
			place(&castorev1.Node{Node: &castorev1.Node_Symlink{Symlink: &castorev1.SymlinkNode{
				Name: name, Target: n.Target}}})
		case nar.KindDirectory:
			stack = append(stack, building{dir: &castorev1.Directory{}, name: name})
		case nar.KindEndDirectory:
			b := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			size, ok := castore.DirectorySize(b.dir)
			if !ok {
				return fail(fmt.Errorf("directory %q: entry count overflows", n.Path()))
			}
			if putter == nil {
				putter = dirs.PutMultiple(ctx)
			}
			dg := castore.DirectoryDigest(b.dir)
			if err := putter.Put(b.dir); err != nil {
				return fail(fmt.Errorf("directory %q: %w", n.Path(), err))
			}
			place(&castorev1.Node{Node: &castorev1.Node_Directory{Directory: &castorev1.DirectoryNode{
				Name: b.name, Digest: dg.Bytes(), Size: size}}})
		}
	}
	finished = true
	narSize, sum, err := pipe.finish()
	if err != nil {
		return fail(fmt.Errorf("scan references: %w", err))
	}
	// Blobs went in with deferred durability: one barrier for the whole
	// NAR, before the directories or the caller's PathInfo name them.
	if err := castore.SyncBlobs(ctx, blobs); err != nil {
		return fail(err)
	}
	if putter != nil {
		got, err := putter.Close()
		if err != nil {
			return fail(err)
		}
		if want := root.GetDirectory().GetDigest(); string(got[:]) != string(want) {
			return fail(fmt.Errorf("directory service stored root %s, want %x", got, want))
		}
	}
	return root, narSize, sum, nil
}

// checkLimits checks the node just read against l; stack holds the
// directories it is in.
func checkLimits(l Limits, n *nar.Node, stack []building) error {
	if n.Kind == nar.KindEndDirectory {
		return nil
	}
	if len(stack) > 0 {
		parent := &stack[len(stack)-1]
		parent.entries++
		if l.MaxEntries > 0 && parent.entries > l.MaxEntries {
			return &castore.LimitError{Limit: castore.LimitEntries, Max: uint64(l.MaxEntries),
				What: fmt.Sprintf("directory %q has more than %d entries", elide("/"+parentPath(n.Path())), l.MaxEntries)}
		}
		if l.MaxNameLen > 0 && len(n.Name) > l.MaxNameLen {
			return &castore.LimitError{Limit: castore.LimitNameLen, Max: uint64(l.MaxNameLen),
				What: fmt.Sprintf("entry %q: name is %d bytes", elide("/"+n.Path()), len(n.Name))}
		}
	}
	// The path is named only for an error: building it for every node
	// would cost the square of the depth.
	if n.Kind == nar.KindDirectory && l.MaxDepth > 0 && len(stack)+1 > l.MaxDepth {
		return l.CheckDepth(len(stack)+1, fmt.Sprintf("%q", elide("/"+n.Path())))
	}
	return nil
}

func parentPath(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return ""
}

func putBlob(ctx context.Context, blobs castore.BlobService, n *nar.Node) (castore.Digest, error) {
	bw, err := blobs.Put(ctx, castore.WithDeferredSync())
	if err != nil {
		return castore.Digest{}, fmt.Errorf("file %q: put blob: %w", n.Path(), err)
	}
	if _, err := io.Copy(bw, n.Contents); err != nil {
		bw.Abort()
		return castore.Digest{}, fmt.Errorf("file %q: %w", n.Path(), err)
	}
	d, err := bw.Close()
	if err != nil {
		return castore.Digest{}, fmt.Errorf("file %q: put blob: %w", n.Path(), err)
	}
	return d, nil
}
