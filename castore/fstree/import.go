// Package fstree moves trees between a local filesystem and castore:
// Import hashes and uploads files in parallel and stores the directory
// closure; Export writes a node back out.
package fstree

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
)

// Progress counts what an import has done so far; safe to read while it runs.
type Progress struct {
	Files atomic.Int64
	Bytes atomic.Int64
}

// ImportOptions tune Import.
type ImportOptions struct {
	// Workers bounds the files hashed and uploaded at once (default 2×CPUs,
	// at least 4).
	Workers  int
	Progress *Progress
	// Filter, if set, is asked about every entry below the root (never the
	// root itself), in name order, with its path and its type ("regular",
	// "directory", "symlink" or "unknown"); a dropped directory is not
	// descended into. builtins.path and filterSource pass the user's
	// function here.
	Filter func(path, typ string) (bool, error)
}

type entry struct {
	name     string
	path     string
	mode     os.FileMode
	children []*entry // directories only, sorted by name
	node     *castorev1.Node
}

// Import stores the tree at path (a directory, file or symlink) and returns
// its root node, named by the last element of path.
func Import(ctx context.Context, path string, blobs castore.BlobService, dirs castore.DirectoryService, opts ImportOptions) (*castorev1.Node, error) {
	if opts.Workers <= 0 {
		// A few more files in flight than cores, so one file's syscalls
		// overlap another's hashing. Durable stores defer their flush to
		// one barrier per import, so nothing is gained from more: with
		// 16 writers a tree of small files imported 30% slower than with 4
		// (each writer appends to a pack of its own).
		opts.Workers = max(4, 2*runtime.GOMAXPROCS(0))
	}
	if opts.Progress == nil {
		opts.Progress = &Progress{}
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", path, err)
	}
	root := &entry{name: filepath.Base(path), path: path, mode: fi.Mode()}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	jobs := make(chan *entry)
	var wg sync.WaitGroup
	for i := 0; i < opts.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range jobs {
				if ctx.Err() != nil {
					continue
				}
				if err := importFile(ctx, e, blobs, opts.Progress); err != nil {
					cancel(err)
				}
			}
		}()
	}
	walkErr := walk(ctx, root, jobs, opts.Filter)
	close(jobs)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	if walkErr != nil {
		return nil, walkErr
	}
	// Files went in with deferred durability; one barrier makes them all
	// durable before anything that names them is stored. The directories
	// are built (encoded and hashed) while the barrier waits for the disk.
	synced := make(chan error, 1)
	go func() { synced <- castore.SyncBlobs(ctx, blobs) }()
	var closure []*castorev1.Directory // leaves first
	if root.mode.IsDir() {
		buildDirectories(root, &closure)
	}
	if err := <-synced; err != nil {
		return nil, fmt.Errorf("import %s: %w", path, err)
	}
	if !root.mode.IsDir() {
		return root.node, nil
	}
	putter := dirs.PutMultiple(ctx)
	for _, d := range closure {
		if err := putter.Put(d); err != nil {
			return nil, fmt.Errorf("import %s: %w", path, err)
		}
	}
	if _, err := putter.Close(); err != nil {
		return nil, fmt.Errorf("import %s: %w", path, err)
	}
	return root.node, nil
}

// walk reads the tree, handing regular files to the workers as it goes.
func walk(ctx context.Context, e *entry, jobs chan<- *entry, filter func(string, string) (bool, error)) error {
	if ctx.Err() != nil {
		return nil
	}
	switch {
	case e.mode.IsRegular():
		select {
		case jobs <- e:
		case <-ctx.Done():
		}
		return nil
	case e.mode&os.ModeSymlink != 0:
		target, err := os.Readlink(e.path)
		if err != nil {
			return fmt.Errorf("import %s: %w", e.path, err)
		}
		if r := castore.ValidateSymlinkTarget([]byte(target)); r != "" {
			return fmt.Errorf("import %s: %s", e.path, r)
		}
		e.node = &castorev1.Node{Node: &castorev1.Node_Symlink{Symlink: &castorev1.SymlinkNode{Name: []byte(e.name), Target: []byte(target)}}}
		return nil
	case e.mode.IsDir():
		des, err := os.ReadDir(e.path) // sorted by name, i.e. by bytes
		if err != nil {
			return fmt.Errorf("import %s: %w", e.path, err)
		}
		for _, de := range des {
			// The type comes with the directory entry; a regular file's
			// permissions and size are read by the worker that opens it
			// (fstat), so this walk, which runs alone, makes no stat call
			// per file.
			c := &entry{name: de.Name(), path: filepath.Join(e.path, de.Name()), mode: de.Type()}
			if filter != nil {
				keep, err := filter(c.path, fileType(c.mode))
				if err != nil {
					return err
				}
				if !keep {
					continue
				}
			}
			e.children = append(e.children, c)
			if err := walk(ctx, c, jobs, filter); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("import %s: unsupported file type %s (only regular files, directories and symlinks can be stored)", e.path, e.mode.Type())
}

func importFile(ctx context.Context, e *entry, blobs castore.BlobService, p *Progress) error {
	f, err := openForRead(e.path)
	if err != nil {
		return fmt.Errorf("import %s: %w", e.path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("import %s: %w", e.path, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("import %s: changed while importing: no longer a regular file", e.path)
	}
	e.mode = fi.Mode()
	size := fi.Size()
	w, err := blobs.Put(ctx, castore.WithDeferredSync())
	if err != nil {
		return fmt.Errorf("import %s: %w", e.path, err)
	}
	// Exactly the size fstat gave, as nix-store --dump reads: no read
	// call is spent finding the end.
	n, err := io.Copy(progressWriter{w, p}, io.LimitReader(f, size))
	if err == nil && n != size {
		err = fmt.Errorf("changed while importing: %d bytes read, fstat said %d", n, size)
	}
	if err != nil {
		w.Abort()
		return fmt.Errorf("import %s: %w", e.path, err)
	}
	d, err := w.Close()
	if err != nil {
		return fmt.Errorf("import %s: %w", e.path, err)
	}
	p.Files.Add(1)
	e.node = &castorev1.Node{Node: &castorev1.Node_File{File: &castorev1.FileNode{
		Name: []byte(e.name), Digest: d.Bytes(), Size: uint64(n), Executable: e.mode&0o100 != 0,
	}}}
	return nil
}

// openForRead opens a regular file without os.Open's attempt to register
// it with the network poller (a fcntl and an epoll_ctl that fail for
// regular files): with tens of thousands of small files that is a
// noticeable share of an import's CPU time.
func openForRead(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

type countingReader struct {
	r io.Reader
	p *Progress
}

func (cr countingReader) Read(b []byte) (int, error) {
	n, err := cr.r.Read(b)
	cr.p.Bytes.Add(int64(n))
	return n, err
}

type progressWriter struct {
	w io.Writer
	p *Progress
}

func (pw progressWriter) Write(b []byte) (int, error) {
	n, err := pw.w.Write(b)
	pw.p.Bytes.Add(int64(n))
	return n, err
}

// ReadFrom lets a blob writer that reads by itself do so (counting what it
// reads), and otherwise keeps io.Copy's buffer large.
func (pw progressWriter) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := pw.w.(io.ReaderFrom); ok {
		return rf.ReadFrom(countingReader{r, pw.p})
	}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	var total int64
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			m, werr := pw.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// buildDirectories puts directories leaves first and sets e.node.
func buildDirectories(e *entry, closure *[]*castorev1.Directory) {
	dir := &castorev1.Directory{}
	for _, c := range e.children {
		if c.mode.IsDir() {
			buildDirectories(c, closure)
		}
		switch n := c.node.GetNode().(type) {
		case *castorev1.Node_Directory:
			dir.Directories = append(dir.Directories, n.Directory)
		case *castorev1.Node_File:
			dir.Files = append(dir.Files, n.File)
		case *castorev1.Node_Symlink:
			dir.Symlinks = append(dir.Symlinks, n.Symlink)
		}
	}
	*closure = append(*closure, dir)
	size, _ := castore.DirectorySize(dir)
	e.node = &castorev1.Node{Node: &castorev1.Node_Directory{Directory: &castorev1.DirectoryNode{
		Name: []byte(e.name), Digest: castore.DirectoryDigest(dir).Bytes(), Size: size,
	}}}
}

func fileType(m os.FileMode) string {
	switch {
	case m.IsRegular():
		return "regular"
	case m.IsDir():
		return "directory"
	case m&os.ModeSymlink != 0:
		return "symlink"
	}
	return "unknown"
}
