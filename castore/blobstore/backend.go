package blobstore

import (
	"io"
	"os"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/chunkedread"
	"github.com/tvix-go/tvix/internal/touchlog"
)

// chunkReader reads one stored chunk.
type chunkReader = chunkedread.Chunk

// fileChunk reads a chunk out of a file the backend keeps open, shared by
// all readers (ReadAt is pread); f and off let a reader hand the range to
// the kernel (castore.FileRanger). release, if set, gives the file back
// (see packCache); it runs once however often Close is called.
type fileChunk struct {
	*io.SectionReader
	f       *os.File
	off     int64
	release func()
}

func (c fileChunk) Close() error {
	if c.release != nil {
		c.release()
	}
	return nil
}

// backend keeps chunks and manifests. Chunks are immutable and named by
// their digest, so concurrent writers of the same chunk are harmless.
type backend interface {
	hasChunk(d castore.Digest) (bool, error)
	openChunk(d castore.Digest) (chunkReader, int64, error)
	// manifest returns ok=false when the blob has no manifest.
	manifest(d castore.Digest) (chunks []castore.ChunkMeta, ok bool, err error)
	newTxn() (txn, error)
	close() error
}

// syncingBackend defers durability: blobs committed with deferSync become
// durable at the next sync.
type syncingBackend interface {
	backend
	sync() error
	// hasDurable reports blobs that are durable already. Has answers from
	// it so that a caller who skips an upload because the blob "is there"
	// never refers durably to a blob a crash could still take away.
	hasDurable(d castore.Digest) (bool, error)
}

// txn stages the chunks of one blob; nothing of it is visible until commit.
type txn interface {
	// stageChunk is called with data that is only valid during the call.
	stageChunk(d castore.Digest, data []byte) error
	// commit makes the staged chunks and, if non-nil, the manifest of blob
	// visible. A single-chunk blob needs no manifest: its chunk is the blob.
	// With deferSync the backend may return before they are durable (see
	// castore.WithDeferredSync).
	commit(blob castore.Digest, manifest []castore.ChunkMeta, deferSync bool) error
	abort()
}

// locator knows where in a local file a chunk's bytes are. The file stays
// open until release (nil: it always does) is called.
type locator interface {
	locate(d castore.Digest) (f *os.File, off, size int64, release func(), ok bool)
}

// largeBlobHinter is a txn that wants to know, before the first chunk is
// staged, that the blob is large (more than one maximum chunk).
type largeBlobHinter interface {
	largeBlob()
}

// backingFiler finds a file holding exactly a blob's bytes.
type backingFiler interface {
	backingFile(d castore.Digest) (*os.File, int64, bool)
}

// touchingBackend looks chunks up on its writers' behalf (a dedup in
// stageChunk) and touches what it finds (see touchlog).
type touchingBackend interface {
	setTouchLog(*touchlog.Log)
}

// sharedToucher is a backend other processes may collect (the object-store
// layout, a directory several daemons share): a touch must reach them, so
// it is recorded in the store itself. touchShared touches blob d (and the
// chunks of manifest m, nil for a single-chunk blob) and reports false if
// any is gone: then the caller must not count on it.
type sharedToucher interface {
	touchShared(d castore.Digest, m []castore.ChunkMeta) bool
}
