package blobstore

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// The object store makes staged files durable and visible in batches (see
// barrier): one syncfs flushes the data of every blob waiting, then their
// renames run, then a second syncfs makes the renames durable before any
// writer's Close returns. Per-file fsyncs cost a device flush each; with
// many small files in flight a batch shares two flushes among all of them.

// staged is a file written to tmp/ and the name it is renamed to.
type staged struct{ tmp, final string }

// commitFiles renames each blob's files into place between two syncfs and
// answers each blob.
func (b *fileBackend) commitFiles(batch [][]staged) []error {
	if err := b.syncfs(); err != nil {
		return sameForAll(err, len(batch))
	}
	errs := make([]error, len(batch))
	for j, files := range batch {
		for i, f := range files {
			err := b.ensureDir(filepath.Dir(f.final))
			if err == nil {
				err = os.Rename(f.tmp, f.final)
			}
			if err != nil {
				// Already renamed files of this blob are complete chunks
				// (named by content); only its manifest is what matters.
				for _, rest := range files[i:] {
					os.Remove(rest.tmp)
				}
				errs[j] = err
				break
			}
		}
	}
	err := b.syncfs()
	for j := range errs {
		if errs[j] == nil {
			errs[j] = err
		}
	}
	return errs
}

func (b *fileBackend) syncfs() error {
	f, err := os.Open(b.root)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("syncfs %s: %w", b.root, err)
	}
	return nil
}
