package blobstore

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/internal/touchlog"
)

// Garbage collection of the object-store layout, which several processes
// may share: what one of them touches must keep the object from the
// sweeps of all, so touches are recorded in the store, as file times. A
// writer's dedup, a Has and an Open refresh the time of the files they
// count on (touchFile); a sweep moves a dead-looking file to trash/
// first (rename: atomic), then looks at its time again: touched since the
// decision, it goes back. A toucher that finds the file gone (moved away
// an instant earlier) takes it as not stored and writes it again, so no
// one ever counts on a file a sweep is deleting.

func (b *fileBackend) setTouchLog(l *touchlog.Log) { b.touch = l }

// touchFile sets a file's times to now; false if it is gone.
func touchFile(path string) bool {
	now := time.Now()
	return os.Chtimes(path, now, now) == nil
}

func (b *fileBackend) touchShared(d castore.Digest, m []castore.ChunkMeta) bool {
	if m == nil {
		return touchFile(b.path("chunks", d))
	}
	ok := touchFile(b.path("blobs", d))
	for _, c := range m {
		ok = touchFile(b.path("chunks", c.Digest)) && ok
	}
	return ok
}

// deadFile is a file a sweep found dead.
type deadFile struct {
	d    castore.Digest
	path string
}

func (b *fileBackend) sweep(ctx context.Context, req castore.SweepRequest) (castore.SweepReport, error) {
	var rep castore.SweepReport
	protected := func(d castore.Digest, mtime time.Time) bool {
		return !mtime.Before(req.Since) || b.touch.Since(d, req.Since)
	}
	liveChunks := map[castore.Digest]bool{}
	var dead []deadFile
	err := walkObjects(filepath.Join(b.root, "blobs", "b3"), func(d castore.Digest, path string, fi fs.FileInfo) error {
		if req.Live(d) || protected(d, fi.ModTime()) {
			if !req.Live(d) {
				rep.Kept++
			}
			raw, err := os.ReadFile(path)
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			m, _, err := decodeManifest(d, raw)
			if err != nil {
				return fmt.Errorf("chunk list %s: %w", path, err)
			}
			for _, c := range m {
				liveChunks[c.Digest] = true
			}
			return nil
		}
		dead = append(dead, deadFile{d, path})
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("sweep chunk lists: %w", err)
	}
	deadManifests := len(dead)
	err = walkObjects(filepath.Join(b.root, "chunks", "b3"), func(d castore.Digest, path string, fi fs.FileInfo) error {
		switch {
		case liveChunks[d] || req.Live(d):
		case protected(d, fi.ModTime()):
			rep.Kept++
		default:
			dead = append(dead, deadFile{d, path})
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("sweep chunks: %w", err)
	}
	if req.DryRun {
		for i, f := range dead {
			if fi, err := os.Stat(f.path); err == nil {
				rep.BytesFreed += fi.Size()
			}
			if i < deadManifests {
				rep.Blobs++
			} else {
				rep.Chunks++
			}
		}
		return rep, nil
	}
	// A trash directory of this sweep's own: another process's sweep may
	// be putting a file of its trash back right now.
	// What sweeps killed part way left in trash was dead (a touched file
	// is put back before the next is moved), but a sweep may still be
	// running: only what is an hour old goes.
	removeStaleTemps(filepath.Join(b.root, "trash"))
	trash, err := os.MkdirTemp(mkdirAll(filepath.Join(b.root, "trash")), "sweep-")
	if err != nil {
		return rep, err
	}
	defer os.Remove(trash)
	// Manifests go first: a blob whose chunk list is gone is gone whole,
	// never a chunk list without its chunks.
	for i, f := range dead {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		var freed int64
		var kept bool
		err := b.touch.Exclusive(func() error {
			if b.touch.Since(f.d, req.Since) {
				kept = true
				return nil
			}
			var err error
			freed, kept, err = trashFile(f.path, filepath.Join(trash, fmt.Sprintf("%d-%s", i, filepath.Base(f.path))), req.Since)
			return err
		})
		if err != nil {
			return rep, fmt.Errorf("sweep %s: %w", f.path, err)
		}
		switch {
		case kept:
			rep.Kept++
		case i < deadManifests:
			rep.Blobs++
		default:
			rep.Chunks++
		}
		rep.BytesFreed += freed
	}
	return rep, nil
}

// trashFile moves path to trash and deletes it there, unless it was
// touched at or after since by then: then it goes back.
func trashFile(path, trash string, since time.Time) (freed int64, kept bool, err error) {
	if err := os.Rename(path, trash); errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	} else if err != nil {
		return 0, false, err
	}
	fi, err := os.Stat(trash)
	if err != nil {
		return 0, false, err
	}
	if !fi.ModTime().Before(since) {
		// Back, unless it was written again meanwhile (same bytes).
		if err := os.Link(trash, path); err != nil && !errors.Is(err, fs.ErrExist) {
			return 0, true, err
		}
		return 0, true, os.Remove(trash)
	}
	return fi.Size(), false, os.Remove(trash)
}

func mkdirAll(dir string) string {
	_ = os.MkdirAll(dir, 0o755)
	return dir
}

// walkObjects calls f for every object file under dir (b3/<shard>/<hex>).
func walkObjects(dir string, f func(d castore.Digest, path string, fi fs.FileInfo) error) error {
	shards, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, sh := range shards {
		entries, err := os.ReadDir(filepath.Join(dir, sh.Name()))
		if err != nil {
			return err
		}
		for _, e := range entries {
			raw, err := hex.DecodeString(e.Name())
			if err != nil || len(raw) != len(castore.Digest{}) {
				continue
			}
			fi, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return err
			}
			if err := f(castore.Digest(raw), filepath.Join(dir, sh.Name(), e.Name()), fi); err != nil {
				return err
			}
		}
	}
	return nil
}
