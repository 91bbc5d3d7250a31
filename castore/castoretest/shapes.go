package castoretest

import (
	"fmt"

	"golang.org/x/sys/unix"

	"lukechampine.com/blake3"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
)

// EmptyBlob is the digest of the empty blob, the file Nested ends in.
var EmptyBlob = castore.Digest(blake3.Sum256(nil))

// Nested returns the closure of depth directories nested one in another,
// each holding one entry named name, the innermost one an empty file
// (EmptyBlob); leaves first (the order a DirectoryPutter wants), so the
// root is last.
func Nested(depth int, name string) []*castorev1.Directory {
	out := make([]*castorev1.Directory, 0, depth)
	d := &castorev1.Directory{Files: []*castorev1.FileNode{{Name: []byte(name), Digest: EmptyBlob.Bytes()}}}
	for range depth {
		out = append(out, d)
		size, _ := castore.DirectorySize(d)
		d = &castorev1.Directory{Directories: []*castorev1.DirectoryNode{{
			Name: []byte(name), Digest: castore.DirectoryDigest(d).Bytes(), Size: size}}}
	}
	return out
}

// Wide returns a directory of n empty files, named so that they sort.
func Wide(n int) *castorev1.Directory {
	d := &castorev1.Directory{}
	width := len(fmt.Sprint(n))
	for i := range n {
		d.Files = append(d.Files, &castorev1.FileNode{Name: fmt.Appendf(nil, "%0*d", width, i), Digest: make([]byte, castore.DigestSize)})
	}
	return d
}

// WalkNested descends the depth directories of a Nested tree at dir (on
// a mount, or unpacked), one
// openat at a time (deeper than PATH_MAX, no path could name the bottom),
// and checks the file there.
func WalkNested(dir string, depth int, name string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	for i := range depth - 1 {
		next, err := openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("level %d: %w", i+1, err)
		}
		fd = next
	}
	defer unix.Close(fd)
	leaf, err := openat(fd, name, unix.O_RDONLY)
	if err != nil {
		return fmt.Errorf("leaf file: %w", err)
	}
	defer unix.Close(leaf)
	var st unix.Stat_t
	if err := unix.Fstat(leaf, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size != 0 {
		return fmt.Errorf("leaf file: stat %+v, %v; want an empty regular file", st, err)
	}
	return nil
}

// openat retries what a signal interrupted: the Go runtime preempts with
// signals, and a FUSE request interrupted so answers EINTR.
func openat(dir int, name string, flags int) (int, error) {
	for {
		fd, err := unix.Openat(dir, name, flags, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}
