package castoretest

import (
	"fmt"

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
