package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/castore/diskimage"
	"github.com/tvix-go/tvix/castore/fstree"
	"github.com/tvix-go/tvix/store/registry"
)

func castoreCommands() []*cli.Command {
	var cmds []*cli.Command
	cmds = append(cmds, &cli.Command{
		Name:  "castore",
		Usage: "content-addressed store: import, export and list trees",
		Subcommands: []*cli.Command{
			{
				Name: "import", Usage: "import directory trees, print each root digest", ArgsUsage: "PATH...",
				Flags: serviceFlags(), Action: castoreImport,
			},
			{
				Name: "import-image", Usage: "import a disk image (qcow2, raw, vmdk, ...) as one chunked blob of its guest-visible bytes", ArgsUsage: "IMAGE",
				Flags: serviceFlags(), Action: castoreImportImage,
			},
			{
				Name: "export", Usage: "write the tree of a directory (or blob) digest to DEST", ArgsUsage: "DIGEST DEST",
				Flags: serviceFlags(), Action: castoreExport,
			},
			{
				Name: "ls", Usage: "list a directory digest, or a path below it", ArgsUsage: "DIGEST [PATH]",
				Flags: serviceFlags(), Action: castoreLs,
			},
		},
	})
	return cmds
}

// describeNode prints a root node the way import reports it.
func describeNode(n *castorev1.Node) string {
	switch {
	case n.GetDirectory() != nil:
		d, _ := castore.DigestFromBytes(n.GetDirectory().GetDigest())
		return fmt.Sprintf("directory %s size %d", d, n.GetDirectory().GetSize())
	case n.GetFile() != nil:
		d, _ := castore.DigestFromBytes(n.GetFile().GetDigest())
		exe := ""
		if n.GetFile().GetExecutable() {
			exe = " executable"
		}
		return fmt.Sprintf("file %s size %d%s", d, n.GetFile().GetSize(), exe)
	case n.GetSymlink() != nil:
		return fmt.Sprintf("symlink -> %s", n.GetSymlink().GetTarget())
	}
	return "empty node"
}

func castoreImportImage(c *cli.Context) error {
	if c.NArg() != 1 {
		return cli.Exit("castore import-image: want one IMAGE", 2)
	}
	s, err := openCastore(c.Context, c)
	if err != nil {
		return err
	}
	defer s.Close()
	prog := &diskimage.Progress{}
	stop := showProgress(stderrProgress(), "importing "+c.Args().First(), "", func() progressState {
		return progressState{Bytes: prog.Bytes.Load(), Total: prog.Size.Load()}
	})
	d, size, typ, err := diskimage.ImportWithProgress(c.Context, c.Args().First(), s.Blobs, prog)
	stop()
	if err != nil {
		return err
	}
	fmt.Printf("%s: %s image, blob %s size %d\n", c.Args().First(), typ, d, size)
	return nil
}

func castoreImport(c *cli.Context) error {
	if c.NArg() == 0 {
		return cli.Exit("castore import: give at least one PATH", 2)
	}
	ctx := c.Context
	s, err := openCastore(ctx, c)
	if err != nil {
		return err
	}
	defer s.Close()
	for _, p := range c.Args().Slice() {
		prog := &fstree.Progress{}
		stop := treeProgress("importing "+p, p, prog)
		node, err := fstree.Import(ctx, p, s.Blobs, s.Directories, fstree.ImportOptions{Progress: prog})
		stop()
		if err != nil {
			return err
		}
		fmt.Printf("%s: %s\n", p, describeNode(node))
	}
	return nil
}

// rootNode finds what a digest names: a directory first, else a blob.
func rootNode(ctx context.Context, s *registry.Services, arg string) (*castorev1.Node, error) {
	d, err := castore.ParseDigest(arg)
	if err != nil {
		return nil, err
	}
	dir, err := s.Directories.Get(ctx, d)
	if err == nil {
		size, _ := castore.DirectorySize(dir)
		return &castorev1.Node{Node: &castorev1.Node_Directory{Directory: &castorev1.DirectoryNode{Digest: d.Bytes(), Size: size}}}, nil
	}
	if !errors.Is(err, castore.ErrNotFound) {
		return nil, err
	}
	r, err := s.Blobs.Open(ctx, d)
	if err != nil {
		if errors.Is(err, castore.ErrNotFound) {
			return nil, fmt.Errorf("%s is neither a directory nor a blob in this store", d)
		}
		return nil, err
	}
	defer r.Close()
	return &castorev1.Node{Node: &castorev1.Node_File{File: &castorev1.FileNode{Digest: d.Bytes(), Size: uint64(r.Size())}}}, nil
}

func castoreExport(c *cli.Context) error {
	if c.NArg() != 2 {
		return cli.Exit("castore export: want DIGEST DEST", 2)
	}
	s, err := openCastore(c.Context, c)
	if err != nil {
		return err
	}
	defer s.Close()
	node, err := rootNode(c.Context, s, c.Args().Get(0))
	if err != nil {
		return err
	}
	return fstree.Export(c.Context, node, c.Args().Get(1), s.Blobs, s.Directories)
}

func castoreLs(c *cli.Context) error {
	if c.NArg() < 1 || c.NArg() > 2 {
		return cli.Exit("castore ls: want DIGEST [PATH]", 2)
	}
	ctx := c.Context
	s, err := openCastore(ctx, c)
	if err != nil {
		return err
	}
	defer s.Close()
	node, err := rootNode(ctx, s, c.Args().Get(0))
	if err != nil {
		return err
	}
	for _, elem := range strings.Split(strings.Trim(path.Clean("/"+c.Args().Get(1)), "/"), "/") {
		if elem == "" {
			continue
		}
		dn := node.GetDirectory()
		if dn == nil {
			return fmt.Errorf("ls: %q: not a directory", elem)
		}
		d, _ := castore.DigestFromBytes(dn.GetDigest())
		dir, err := s.Directories.Get(ctx, d)
		if err != nil {
			return err
		}
		if node = childNode(dir, []byte(elem)); node == nil {
			return fmt.Errorf("ls: %q: no such entry", elem)
		}
	}
	if dn := node.GetDirectory(); dn != nil {
		d, _ := castore.DigestFromBytes(dn.GetDigest())
		dir, err := s.Directories.Get(ctx, d)
		if err != nil {
			return err
		}
		for _, n := range castore.Children(dir) {
			fmt.Printf("%s\t%s\n", castore.NodeName(n), describeNode(n))
		}
		return nil
	}
	fmt.Println(describeNode(node))
	return nil
}

func childNode(dir *castorev1.Directory, name []byte) *castorev1.Node {
	for _, n := range castore.Children(dir) {
		if bytes.Equal(castore.NodeName(n), name) {
			return n
		}
	}
	return nil
}
