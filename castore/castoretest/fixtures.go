package castoretest

import (
	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
)

// Tvix's directory fixtures, with sizes as the castore spec defines them.
var (
	DirectoryA = &castorev1.Directory{}
	DirectoryB = &castorev1.Directory{Directories: []*castorev1.DirectoryNode{
		{Name: []byte("a"), Digest: castore.DirectoryDigest(DirectoryA).Bytes(), Size: 0}}}
	DirectoryC = &castorev1.Directory{Directories: []*castorev1.DirectoryNode{
		{Name: []byte("a"), Digest: castore.DirectoryDigest(DirectoryA).Bytes(), Size: 0},
		{Name: []byte("a'"), Digest: castore.DirectoryDigest(DirectoryA).Bytes(), Size: 0}}}
	DirectoryD = &castorev1.Directory{Directories: []*castorev1.DirectoryNode{
		{Name: []byte("a"), Digest: castore.DirectoryDigest(DirectoryA).Bytes(), Size: 0},
		{Name: []byte("b"), Digest: castore.DirectoryDigest(DirectoryB).Bytes(), Size: 1}}}
	DirectoryWithKeep = &castorev1.Directory{Files: []*castorev1.FileNode{
		{Name: []byte(".keep"), Digest: castore.EmptyBlobDigest.Bytes(), Size: 0}}}
	DirectoryComplicated = &castorev1.Directory{
		Directories: []*castorev1.DirectoryNode{{Name: []byte("keep"), Digest: castore.DirectoryDigest(DirectoryWithKeep).Bytes(), Size: 1}},
		Files:       []*castorev1.FileNode{{Name: []byte(".keep"), Digest: castore.EmptyBlobDigest.Bytes(), Size: 0}},
		Symlinks:    []*castorev1.SymlinkNode{{Name: []byte("aa"), Target: []byte("/nix/store/somewhereelse")}},
	}
)
