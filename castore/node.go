package castore

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/tvix-go/tvix/castore/castorev1"
)

// NodeName returns the name of whichever node n holds.
func NodeName(n *castorev1.Node) []byte {
	switch {
	case n.GetDirectory() != nil:
		return n.GetDirectory().GetName()
	case n.GetFile() != nil:
		return n.GetFile().GetName()
	case n.GetSymlink() != nil:
		return n.GetSymlink().GetName()
	}
	return nil
}

// ValidateNode checks a root node on its own (the name is checked by the
// caller, since anonymous nodes have none and PathInfo roots need a store
// path basename).
func ValidateNode(n *castorev1.Node) error {
	switch {
	case n.GetDirectory() != nil:
		if len(n.GetDirectory().GetDigest()) != DigestSize {
			return fmt.Errorf("invalid directory node: digest has %d bytes, want %d", len(n.GetDirectory().GetDigest()), DigestSize)
		}
	case n.GetFile() != nil:
		if len(n.GetFile().GetDigest()) != DigestSize {
			return fmt.Errorf("invalid file node: digest has %d bytes, want %d", len(n.GetFile().GetDigest()), DigestSize)
		}
	case n.GetSymlink() != nil:
		if r := ValidateSymlinkTarget(n.GetSymlink().GetTarget()); r != "" {
			return fmt.Errorf("invalid symlink node: %s", r)
		}
	default:
		return fmt.Errorf("invalid node: no directory, file or symlink set")
	}
	return nil
}

// RenameNode returns a copy of n with another name (e.g. anonymous for NAR
// URLs, or a store path basename for a PathInfo root).
func RenameNode(n *castorev1.Node, name []byte) *castorev1.Node {
	switch {
	case n.GetDirectory() != nil:
		d := n.GetDirectory()
		return &castorev1.Node{Node: &castorev1.Node_Directory{Directory: &castorev1.DirectoryNode{Name: name, Digest: d.Digest, Size: d.Size}}}
	case n.GetFile() != nil:
		f := n.GetFile()
		return &castorev1.Node{Node: &castorev1.Node_File{File: &castorev1.FileNode{Name: name, Digest: f.Digest, Size: f.Size, Executable: f.Executable}}}
	case n.GetSymlink() != nil:
		return &castorev1.Node{Node: &castorev1.Node_Symlink{Symlink: &castorev1.SymlinkNode{Name: name, Target: n.GetSymlink().Target}}}
	}
	return &castorev1.Node{}
}

// Children lists a directory's entries across its three lists in name
// (byte) order, the order NAR files and directory listings use.
func Children(dir *castorev1.Directory) []*castorev1.Node {
	out := make([]*castorev1.Node, 0, len(dir.GetDirectories())+len(dir.GetFiles())+len(dir.GetSymlinks()))
	for _, n := range dir.GetDirectories() {
		out = append(out, &castorev1.Node{Node: &castorev1.Node_Directory{Directory: n}})
	}
	for _, n := range dir.GetFiles() {
		out = append(out, &castorev1.Node{Node: &castorev1.Node_File{File: n}})
	}
	for _, n := range dir.GetSymlinks() {
		out = append(out, &castorev1.Node{Node: &castorev1.Node_Symlink{Symlink: n}})
	}
	slices.SortFunc(out, func(a, b *castorev1.Node) int { return bytes.Compare(NodeName(a), NodeName(b)) })
	return out
}
