package blobstore

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// packFS is the file I/O of the pack store's data path: what it does to
// pack files and their directory between a put and the index commit.
// Tests put a failing one in (a device that returns EIO on fdatasync, a
// full disk) to see that nothing becomes visible that a flush did not make
// durable. Files stay *os.File: readers hand pack ranges to the kernel
// (splice, FUSE passthrough), which needs real descriptors.
type packFS interface {
	// create makes a new, empty pack for appending; it fails if the name
	// exists.
	create(path string) (*os.File, error)
	// open opens a pack, of this or an earlier process, for reading.
	open(path string) (*os.File, error)
	writeAt(f *os.File, p []byte, off int64) error
	truncate(f *os.File, size int64) error
	// startWriteback asks the disk to start writing a range and waits for
	// nothing: a hint.
	startWriteback(f *os.File, off, n int64)
	// finishWriteback waits for the writing of a range started earlier and
	// drops the range from the page cache.
	finishWriteback(f *os.File, off, n int64) error
	// datasync makes a pack's bytes durable (not its timestamps).
	datasync(f *os.File) error
	// syncDir makes a directory's entries durable.
	syncDir(dir string) error
}

// osFS is the real file system.
type osFS struct{}

func (osFS) create(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
}

func (osFS) open(path string) (*os.File, error) { return os.Open(path) }

func (osFS) writeAt(f *os.File, p []byte, off int64) error {
	_, err := f.WriteAt(p, off)
	return err
}

func (osFS) truncate(f *os.File, size int64) error { return f.Truncate(size) }

func (osFS) startWriteback(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}

func (osFS) finishWriteback(f *os.File, off, n int64) error {
	fd := int(f.Fd())
	err := unix.SyncFileRange(fd, off, n, unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER)
	// Dropping the pages is a hint; it fails only for arguments this
	// process never passes.
	_ = unix.Fadvise(fd, off, n, unix.FADV_DONTNEED)
	if err != nil {
		return fmt.Errorf("sync_file_range: %w", err)
	}
	return nil
}

func (osFS) datasync(f *os.File) error {
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		return fmt.Errorf("fdatasync: %w", err)
	}
	return nil
}

func (osFS) syncDir(dir string) error { return syncDir(dir) }
