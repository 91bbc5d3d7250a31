package blobstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/internal/touchlog"
)

// formatVersion is what the object-store layout records in formatFile.
const formatVersion = "tvix-go objectstore v1\n"

// NewFile opens (creating if needed) a chunking BlobService in a directory:
// chunks/b3/<first 2 bytes hex>/<hex> holds raw chunk bytes,
// blobs/b3/<first 2 bytes hex>/<hex> the chunk list (a serialized
// StatBlobResponse) of blobs of more than one chunk, as Tvix's object store
// lays them out. Every file is written to tmp/, fsynced and renamed into
// place, so a crash never leaves a partial chunk or manifest visible.
func NewFile(root string) (*Store, error) {
	// checkFormat refuses a foreign directory before anything is created
	// in it, and makes tmp/ for a new store.
	if err := checkFormat(root, formatVersion, "tmp"); err != nil {
		return nil, fmt.Errorf("open blob store %s: %w", root, err)
	}
	removeStaleTemps(filepath.Join(root, "tmp"))
	b := &fileBackend{root: root, tmp: filepath.Join(root, "tmp")}
	b.group = newBarrier(b.commitFiles)
	return newStore(b), nil
}

// removeStaleTemps deletes what interrupted puts (or sweeps) left behind.
// Other processes may share the directory and be writing right now, so
// only entries untouched for an hour go.
func removeStaleTemps(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > time.Hour {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}

type fileBackend struct {
	root, tmp string
	group     *barrier[[]staged]
	dirs      sync.Map // shard directories known to exist
	touch     *touchlog.Log
}

func (b *fileBackend) path(kind string, d castore.Digest) string {
	return filepath.Join(b.root, filepath.FromSlash(ObjectKey(kind, d)))
}

func (b *fileBackend) hasChunk(d castore.Digest) (bool, error) {
	_, err := os.Stat(b.path(ChunkObjects, d))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

func (b *fileBackend) openChunk(d castore.Digest) (chunkReader, int64, error) {
	f, err := os.Open(b.path(ChunkObjects, d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, fmt.Errorf("chunk %s: %w", d, castore.ErrNotFound)
	}
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}

func (b *fileBackend) manifest(d castore.Digest) ([]castore.ChunkMeta, bool, error) {
	raw, err := os.ReadFile(b.path(BlobObjects, d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return decodeManifest(d, raw)
}

func (b *fileBackend) ensureDir(dir string) error {
	if _, ok := b.dirs.Load(dir); ok {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b.dirs.Store(dir, struct{}{})
	return nil
}

func (b *fileBackend) newTxn() (txn, error) { return &fileTxn{b: b}, nil }

func (b *fileBackend) close() error { return nil }

type fileTxn struct {
	b     *fileBackend
	files []staged
	seen  map[castore.Digest]bool
}

func (t *fileTxn) stageChunk(d castore.Digest, data []byte) error {
	if t.seen[d] {
		return nil
	}
	final := t.b.path(ChunkObjects, d)
	// Already stored (chunks are named by content): refreshing its time is
	// both the check and the touch a sweep of any process sees. Gone, it is
	// written again.
	var found bool
	t.b.touch.Guard(func() {
		if found = touchFile(final); found {
			t.b.touch.Touch(d)
		}
	})
	if found {
		return nil
	}
	tmp, err := writeTemp(t.b.tmp, data, false)
	if err != nil {
		return err
	}
	if t.seen == nil {
		t.seen = map[castore.Digest]bool{}
	}
	t.seen[d] = true
	t.files = append(t.files, staged{tmp, final})
	return nil
}

func (t *fileTxn) commit(blob castore.Digest, manifest []castore.ChunkMeta, _ bool) error {
	if manifest != nil {
		tmp, err := writeTemp(t.b.tmp, encodeManifest(manifest), false)
		if err != nil {
			t.abort()
			return err
		}
		// The manifest goes last: once it is visible, all chunks are.
		t.files = append(t.files, staged{tmp, t.b.path(BlobObjects, blob)})
	}
	files := t.files
	t.files = nil
	if err := t.b.group.wait(files); err != nil {
		for _, f := range files {
			os.Remove(f.tmp)
		}
		return err
	}
	return nil
}

func (t *fileTxn) abort() {
	for _, s := range t.files {
		os.Remove(s.tmp)
	}
	t.files = nil
}
