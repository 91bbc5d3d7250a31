package castore

import (
	"context"
	"io"
	"iter"
	"os"

	"github.com/tvix-go/tvix/castore/castorev1"
)

// BlobReader reads one blob. It can seek and read at an offset without
// reading from the start; chunked backends fetch only the chunks covering
// the bytes asked for.
type BlobReader interface {
	io.Reader
	io.ReaderAt
	io.Seeker
	io.Closer
	Size() int64
}

// FileRanger is implemented by blob readers whose bytes live in local
// files. FileRange names the file and offset holding the blob's bytes from
// off on, and how many of the n wanted lie there contiguously (0 when none
// do), so a server can hand the range to the kernel (splice, sendfile)
// instead of copying it through its own memory. The file stays open as
// long as the blob service does.
type FileRanger interface {
	FileRange(off int64, n int) (f *os.File, fileOff int64, contiguous int)
}

// BackingFiler is implemented by blob services that can name a local file
// whose contents are exactly a blob (from offset 0 to size), so a FUSE
// mount can let the kernel read it directly (passthrough). Not every blob
// has one; the file stays open as long as the service does.
type BackingFiler interface {
	BackingFile(ctx context.Context, d Digest) (f *os.File, size int64, ok bool)
}

// BlobWriter receives a blob's contents. Close verifies them (against the
// expected digest, if one was given) and only then makes the blob visible;
// Abort discards everything written so far.
type BlobWriter interface {
	io.Writer
	Close() (Digest, error)
	Abort()
}

// ChunkMeta describes one stored chunk of a blob, in blob order.
type ChunkMeta struct {
	Digest Digest
	Size   uint64
}

// PutOptions configure BlobService.Put.
type PutOptions struct {
	// Expected, when set, makes Close refuse contents with another digest,
	// as containerd's Commit does.
	Expected    Digest
	HasExpected bool
	// DeferSync lets Close return once the blob is stored but before it is
	// durable; the writer promises to call Sync (see Syncer) before anything
	// durable refers to the blob. Backends without the distinction ignore it.
	DeferSync bool
}

// PutOption sets a PutOptions field.
type PutOption func(*PutOptions)

// WithExpectedDigest makes Close refuse contents hashing to anything else.
func WithExpectedDigest(d Digest) PutOption {
	return func(o *PutOptions) { o.Expected, o.HasExpected = d, true }
}

// WithDeferredSync trades per-blob durability for one barrier per batch:
// an import puts all its files this way, then calls Sync once before it
// stores the directories that name them.
func WithDeferredSync() PutOption {
	return func(o *PutOptions) { o.DeferSync = true }
}

// Syncer is implemented by blob services whose Put can defer durability.
// Sync returns once every blob closed so far is durable.
type Syncer interface {
	Sync(ctx context.Context) error
}

// SyncBlobs makes deferred puts durable where the service defers them.
func SyncBlobs(ctx context.Context, bs BlobService) error {
	if s, ok := As[Syncer](bs); ok {
		return s.Sync(ctx)
	}
	return nil
}

// BlobService stores blobs by the BLAKE3 digest of their contents.
type BlobService interface {
	Has(ctx context.Context, d Digest) (bool, error)
	// Open returns ErrNotFound (wrapped) for an unknown digest.
	Open(ctx context.Context, d Digest) (BlobReader, error)
	Put(ctx context.Context, opts ...PutOption) (BlobWriter, error)
	// Chunks lists the chunks a blob is stored as; an empty list means the
	// blob is not split any finer. ErrNotFound for an unknown digest.
	Chunks(ctx context.Context, d Digest) ([]ChunkMeta, error)
	Close() error
}

// DirectoryService stores directories by the digest of their encoding.
// Every directory that enters it is validated, and only whole closures
// enter it: a directory may only reference directories already present.
type DirectoryService interface {
	// Get returns ErrNotFound (wrapped) for an unknown digest.
	Get(ctx context.Context, d Digest) (*castorev1.Directory, error)
	// GetRecursive yields the closure of root: root first, then each
	// directory after one that references it, each once.
	GetRecursive(ctx context.Context, root Digest) iter.Seq2[*castorev1.Directory, error]
	// Put stores a single directory whose children are all present.
	Put(ctx context.Context, d *castorev1.Directory) (Digest, error)
	// PutMultiple stores a closure sent leaves first, all or nothing.
	PutMultiple(ctx context.Context) DirectoryPutter
	Close() error
}

// DirectoryPutter receives a closure leaves first; Close checks that it is
// complete and connected, stores it and returns the root (the last one put).
type DirectoryPutter interface {
	Put(d *castorev1.Directory) error
	Close() (Digest, error)
}

// ApplyPutOptions folds options into a PutOptions.
func ApplyPutOptions(opts []PutOption) PutOptions {
	var o PutOptions
	for _, f := range opts {
		f(&o)
	}
	return o
}
