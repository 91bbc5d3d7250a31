package closure

import (
	"context"
	"fmt"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/nix/nixbase32"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/narcastore"
)

// VerifyReport sums up a Verify.
type VerifyReport struct {
	Paths int // paths checked
	// Damaged counts paths with a problem; Problems every problem,
	// including those of the blob store's own index.
	Damaged, Problems int
	Blobs             int    // distinct blobs checked
	Bytes             uint64 // their bytes (hashed, with checkContents)
}

// String is the summary line `tvix store verify` ends with.
func (r VerifyReport) String() string {
	return fmt.Sprintf("checked %d paths, %d blobs, %d bytes: %d problems", r.Paths, r.Blobs, r.Bytes, r.Problems)
}

// IndexChecker is a blob store that can check its index against its files
// without reading contents (blobstore.Store, for pack files).
type IndexChecker interface {
	// CheckIndex returns the problems it found.
	CheckIndex(ctx context.Context) ([]string, error)
}

// Verify checks every path the store lists: that its references are in
// the store (the closure invariant), that its contents are present or,
// with checkContents, that they hash to its NAR hash; and first, where
// the blob store can, that its index agrees with its files (a lost or
// truncated pack). problem is told of each problem, in the words
// nix-store --verify uses where it has them.
func Verify(ctx context.Context, s Store, checkContents bool, problem func(msg string)) (VerifyReport, error) {
	var rep VerifyReport
	report := func(msg string) {
		rep.Problems++
		problem(msg)
	}
	if ic, ok := castore.As[IndexChecker](s.Blobs); ok {
		problems, err := ic.CheckIndex(ctx)
		if err != nil {
			return rep, err
		}
		for _, p := range problems {
			report(p)
		}
	}
	// The references are checked against the listing, not with Get,
	// which may substitute what is missing and so hide it.
	present := map[[storepath.DigestSize]byte]bool{}
	for info, err := range s.PathInfos.List(ctx) {
		if err != nil {
			return rep, fmt.Errorf("list paths: %w", err)
		}
		sp, err := storepath.FromBasename(string(castore.NodeName(info.GetNode())))
		if err != nil {
			return rep, fmt.Errorf("list paths: %w", err)
		}
		present[sp.Digest] = true
	}
	blobs := map[castore.Digest]bool{}
	for info, err := range s.PathInfos.List(ctx) {
		if err != nil {
			return rep, fmt.Errorf("list paths: %w", err)
		}
		rep.Paths++
		name := storepath.StoreDir + "/" + string(castore.NodeName(info.GetNode()))
		damaged := false
		for i, ref := range info.GetReferences() {
			var d [storepath.DigestSize]byte
			copy(d[:], ref)
			if !present[d] {
				report(fmt.Sprintf("path '%s' is incomplete: its reference '%s/%s' is not in the store", name, storepath.StoreDir, info.GetNarinfo().GetReferenceNames()[i]))
				damaged = true
			}
		}
		node := castore.RenameNode(info.GetNode(), nil)
		if !checkContents {
			err := forEachFile(ctx, s.Dirs, node, func(d castore.Digest, size uint64) error {
				if blobs[d] {
					return nil
				}
				ok, err := s.Blobs.Has(ctx, d)
				if err == nil && !ok {
					err = fmt.Errorf("blob %s missing", d)
				}
				if err == nil {
					blobs[d] = true
					rep.Blobs++
					rep.Bytes += size
				}
				return err
			})
			if err != nil {
				report(fmt.Sprintf("path '%s' is damaged: %v", name, err))
				damaged = true
			}
		} else {
			size, sum, err := narcastore.CalculateNAR(ctx, node, s.Blobs, s.Dirs)
			switch {
			case err != nil:
				report(fmt.Sprintf("path '%s' is damaged: %v", name, err))
				damaged = true
			case size != info.GetNarinfo().GetNarSize() || string(sum[:]) != string(info.GetNarinfo().GetNarSha256()):
				report(fmt.Sprintf("path '%s' was modified! expected hash 'sha256:%s', got 'sha256:%s'", name,
					nixbase32.EncodeToString(info.GetNarinfo().GetNarSha256()), nixbase32.EncodeToString(sum[:])))
				damaged = true
			default:
				rep.Bytes += size
				forEachFile(ctx, s.Dirs, node, func(d castore.Digest, _ uint64) error {
					if !blobs[d] {
						blobs[d] = true
						rep.Blobs++
					}
					return nil
				})
			}
		}
		if damaged {
			rep.Damaged++
		}
	}
	return rep, nil
}

// forEachFile calls fn with the digest and size of every file in node's
// tree.
func forEachFile(ctx context.Context, dirs castore.DirectoryService, node *castorev1.Node, fn func(castore.Digest, uint64) error) error {
	visit := func(dg []byte, size uint64) error {
		d, err := castore.DigestFromBytes(dg)
		if err != nil {
			return err
		}
		return fn(d, size)
	}
	switch {
	case node.GetFile() != nil:
		return visit(node.GetFile().GetDigest(), node.GetFile().GetSize())
	case node.GetDirectory() != nil:
		root, err := castore.DigestFromBytes(node.GetDirectory().GetDigest())
		if err != nil {
			return err
		}
		for dir, err := range dirs.GetRecursive(ctx, root) {
			if err != nil {
				return err
			}
			for _, f := range dir.GetFiles() {
				if err := visit(f.GetDigest(), f.GetSize()); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
