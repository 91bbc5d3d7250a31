// Package importer adds local files and trees to the store the way
// `nix-store --add`, `--add-fixed` and builtins.toFile do: contents into
// castore, a PathInfo with the store path C++ Nix computes.
package importer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/castore/fstree"
	"github.com/tvix-go/tvix/nix/nixhash"
	"github.com/tvix-go/tvix/nix/refscan"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/narcastore"
	"github.com/tvix-go/tvix/store/pathinfo"
	"github.com/tvix-go/tvix/store/storev1"
)

// Store is the three services an import writes to.
type Store struct {
	Blobs    castore.BlobService
	Dirs     castore.DirectoryService
	PathInfo pathinfo.Service
	// Progress, if set, counts the files and bytes imported, for a
	// caller that shows how a long import is going.
	Progress *fstree.Progress
	// Limits bound what AddStream takes from a client (zero: none).
	Limits narcastore.Limits
}

// caTypes maps (recursive, algo) onto the PathInfo CA enum.
func caType(recursive bool, algo nixhash.Algo) (storev1.NARInfo_CA_Hash, error) {
	switch {
	case recursive && algo == nixhash.SHA256:
		return storev1.NARInfo_CA_NAR_SHA256, nil
	case recursive && algo == nixhash.SHA1:
		return storev1.NARInfo_CA_NAR_SHA1, nil
	case recursive && algo == nixhash.SHA512:
		return storev1.NARInfo_CA_NAR_SHA512, nil
	case recursive && algo == nixhash.MD5:
		return storev1.NARInfo_CA_NAR_MD5, nil
	case algo == nixhash.SHA256:
		return storev1.NARInfo_CA_FLAT_SHA256, nil
	case algo == nixhash.SHA1:
		return storev1.NARInfo_CA_FLAT_SHA1, nil
	case algo == nixhash.SHA512:
		return storev1.NARInfo_CA_FLAT_SHA512, nil
	case algo == nixhash.MD5:
		return storev1.NARInfo_CA_FLAT_MD5, nil
	}
	return 0, fmt.Errorf("unsupported hash algorithm %v", algo)
}

// record computes the NAR of node, names it and stores the PathInfo.
func (s Store) record(ctx context.Context, node *castorev1.Node, sp storepath.StorePath, ca *storev1.NARInfo_CA, refs []storepath.StorePath) (*storev1.PathInfo, error) {
	anon := castore.RenameNode(node, nil)
	narSize, narSHA, err := narcastore.CalculateNAR(ctx, anon, s.Blobs, s.Dirs)
	if err != nil {
		return nil, fmt.Errorf("add %s: %w", sp, err)
	}
	return s.recordNAR(ctx, node, sp, ca, refs, narSize, narSHA)
}

// recordNAR stores the PathInfo of node, whose NAR is known already.
func (s Store) recordNAR(ctx context.Context, node *castorev1.Node, sp storepath.StorePath, ca *storev1.NARInfo_CA, refs []storepath.StorePath, narSize uint64, narSHA [32]byte) (*storev1.PathInfo, error) {
	info := &storev1.PathInfo{
		Node:    castore.RenameNode(node, []byte(sp.Basename())),
		Narinfo: &storev1.NARInfo{NarSize: narSize, NarSha256: narSHA[:], Ca: ca},
	}
	for _, r := range refs {
		info.References = append(info.References, append([]byte(nil), r.Digest[:]...))
		info.Narinfo.ReferenceNames = append(info.Narinfo.ReferenceNames, r.Basename())
	}
	if _, err := s.PathInfo.Put(ctx, info); err != nil {
		return nil, fmt.Errorf("add %s: %w", sp, err)
	}
	return info, nil
}

// AddRecursive is `nix-store --add PATH` (name defaults to the basename):
// the store path is a "source" path over the NAR's sha256. Nothing is
// scanned for references unless candidates are given; those found in the
// NAR become references (and part of the path, as Nix computes it).
func (s Store) AddRecursive(ctx context.Context, path, name string, candidates ...storepath.StorePath) (storepath.StorePath, *storev1.PathInfo, error) {
	if name == "" {
		name = filepath.Base(path)
	}
	node, err := fstree.Import(ctx, path, s.Blobs, s.Dirs, fstree.ImportOptions{Progress: s.Progress})
	if err != nil {
		return storepath.StorePath{}, nil, err
	}
	return s.AddNode(ctx, node, name, candidates...)
}

// AddNode records an already imported node as a source path.
func (s Store) AddNode(ctx context.Context, node *castorev1.Node, name string, candidates ...storepath.StorePath) (storepath.StorePath, *storev1.PathInfo, error) {
	h := sha256.New()
	var w io.Writer = h
	var scan *refscan.Scanner
	if len(candidates) > 0 {
		scan = refscan.New(candidates)
		w = io.MultiWriter(h, scan)
	}
	if err := narcastore.Render(ctx, w, castore.RenameNode(node, nil), s.Blobs, s.Dirs); err != nil {
		return storepath.StorePath{}, nil, fmt.Errorf("add %s: %w", name, err)
	}
	narSHA := h.Sum(nil)
	var refs []storepath.StorePath
	if scan != nil {
		refs = scan.Found()
	}
	sp, err := storepath.MakeSource(name, narSHA, refs, false)
	if err != nil {
		return sp, nil, fmt.Errorf("add %s: %w", name, err)
	}
	info, err := s.record(ctx, node, sp, &storev1.NARInfo_CA{Type: storev1.NARInfo_CA_NAR_SHA256, Digest: narSHA}, refs)
	return sp, info, err
}

// AddFixed is `nix-store --add-fixed [--recursive] ALGO PATH`.
func (s Store) AddFixed(ctx context.Context, path, name string, recursive bool, algo nixhash.Algo) (storepath.StorePath, *storev1.PathInfo, error) {
	if name == "" {
		name = filepath.Base(path)
	}
	if recursive && algo == nixhash.SHA256 {
		return s.AddRecursive(ctx, path, name)
	}
	node, err := fstree.Import(ctx, path, s.Blobs, s.Dirs, fstree.ImportOptions{Progress: s.Progress})
	if err != nil {
		return storepath.StorePath{}, nil, err
	}
	h := algo.New()
	if recursive {
		if err := narcastore.Render(ctx, h, castore.RenameNode(node, nil), s.Blobs, s.Dirs); err != nil {
			return storepath.StorePath{}, nil, fmt.Errorf("add %s: %w", path, err)
		}
	} else {
		if node.GetFile() == nil {
			return storepath.StorePath{}, nil, fmt.Errorf("add %s: flat hashing needs a regular file", path)
		}
		f, err := os.Open(path)
		if err != nil {
			return storepath.StorePath{}, nil, err
		}
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return storepath.StorePath{}, nil, fmt.Errorf("add %s: %w", path, err)
		}
	}
	digest := h.Sum(nil)
	sp, err := storepath.MakeFixedOutput(name, recursive, algo.String(), digest, nil)
	if err != nil {
		return sp, nil, err
	}
	typ, err := caType(recursive, algo)
	if err != nil {
		return sp, nil, err
	}
	info, err := s.record(ctx, node, sp, &storev1.NARInfo_CA{Type: typ, Digest: digest}, nil)
	return sp, info, err
}

// AddText is builtins.toFile and .drv files: a "text" path over the sha256
// of the contents, with references.
func (s Store) AddText(ctx context.Context, name string, contents []byte, refs []storepath.StorePath) (storepath.StorePath, *storev1.PathInfo, error) {
	sum := sha256.Sum256(contents)
	sp, err := storepath.MakeText(name, sum[:], refs)
	if err != nil {
		return sp, nil, err
	}
	w, err := s.Blobs.Put(ctx)
	if err != nil {
		return sp, nil, err
	}
	if _, err := io.Copy(w, bytes.NewReader(contents)); err != nil {
		w.Abort()
		return sp, nil, err
	}
	d, err := w.Close()
	if err != nil {
		return sp, nil, err
	}
	node := &castorev1.Node{Node: &castorev1.Node_File{File: &castorev1.FileNode{Digest: d.Bytes(), Size: uint64(len(contents))}}}
	info, err := s.record(ctx, node, sp, &storev1.NARInfo_CA{Type: storev1.NARInfo_CA_TEXT_SHA256, Digest: sum[:]}, refs)
	return sp, info, err
}

// AddStream adds what the Nix daemon protocol's AddToStore sends: for
// method Text the contents of a text file (sha256 only, references
// allowed), for Flat a regular file's contents, for Recursive a NAR
// (references allowed with sha256, as a source path). Nothing is recorded
// unless the whole stream was read and is valid.
func (s Store) AddStream(ctx context.Context, r io.Reader, name string, method nixhash.Method, algo nixhash.Algo, refs []storepath.StorePath) (storepath.StorePath, *storev1.PathInfo, error) {
	fail := func(err error) (storepath.StorePath, *storev1.PathInfo, error) {
		return storepath.StorePath{}, nil, fmt.Errorf("add %s: %w", name, err)
	}
	if err := storepath.ValidateName(name); err != nil {
		return fail(err)
	}
	if method == nixhash.Recursive {
		h := algo.New()
		if h == nil {
			return fail(fmt.Errorf("unsupported hash algorithm %v", algo))
		}
		opts := []narcastore.Option{narcastore.WithLimits(s.Limits)}
		if algo != nixhash.SHA256 {
			opts = append(opts, narcastore.WithScanner(h))
		}
		node, narSize, narSHA, err := narcastore.Ingest(ctx, r, s.Blobs, s.Dirs, opts...)
		if err != nil {
			return fail(err)
		}
		digest := narSHA[:]
		if algo != nixhash.SHA256 {
			digest = h.Sum(nil)
		}
		sp, err := storepath.MakeFixedOutput(name, true, algo.String(), digest, refs)
		if err != nil {
			return fail(err)
		}
		typ, err := caType(true, algo)
		if err != nil {
			return fail(err)
		}
		info, err := s.recordNAR(ctx, node, sp, &storev1.NARInfo_CA{Type: typ, Digest: digest}, refs, narSize, narSHA)
		return sp, info, err
	}
	if method == nixhash.Text && algo != nixhash.SHA256 {
		return fail(fmt.Errorf("text files are hashed with sha256, not %v", algo))
	}
	if method == nixhash.Flat && len(refs) > 0 {
		return fail(fmt.Errorf("a flat fixed-output path cannot have references"))
	}
	h := algo.New()
	if h == nil {
		return fail(fmt.Errorf("unsupported hash algorithm %v", algo))
	}
	w, err := s.Blobs.Put(ctx)
	if err != nil {
		return fail(err)
	}
	src := r
	if max := s.Limits.MaxNARSize; max > 0 {
		src = io.LimitReader(r, int64(max)+1)
	}
	n, err := io.Copy(io.MultiWriter(w, h), src)
	if err == nil && s.Limits.MaxNARSize > 0 && uint64(n) > s.Limits.MaxNARSize {
		err = &castore.LimitError{Limit: narcastore.LimitNARSize, Max: s.Limits.MaxNARSize, What: fmt.Sprintf("file is more than %d bytes", s.Limits.MaxNARSize)}
	}
	if err != nil {
		w.Abort()
		return fail(err)
	}
	d, err := w.Close()
	if err != nil {
		return fail(err)
	}
	digest := h.Sum(nil)
	var (
		sp storepath.StorePath
		ca *storev1.NARInfo_CA
	)
	if method == nixhash.Text {
		sp, err = storepath.MakeText(name, digest, refs)
		ca = &storev1.NARInfo_CA{Type: storev1.NARInfo_CA_TEXT_SHA256, Digest: digest}
	} else {
		typ, caErr := caType(false, algo)
		sp, err = storepath.MakeFixedOutput(name, false, algo.String(), digest, nil)
		err = errors.Join(err, caErr)
		ca = &storev1.NARInfo_CA{Type: typ, Digest: digest}
	}
	if err != nil {
		return fail(err)
	}
	node := &castorev1.Node{Node: &castorev1.Node_File{File: &castorev1.FileNode{Digest: d.Bytes(), Size: uint64(n)}}}
	info, err := s.record(ctx, node, sp, ca, refs)
	return sp, info, err
}
