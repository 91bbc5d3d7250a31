package closure

import (
	"context"
	"crypto/sha256"
	"fmt"
	"hash"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/nix/nixbase32"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/narcastore"
	"github.com/tvix-go/tvix/store/storev1"
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

// VerifyProgress is told how a verification goes, for a caller that
// shows it; either func may be nil.
type VerifyProgress struct {
	// Read is told of NAR bytes as they are hashed (checkContents).
	Read func(n int)
	// Checked is told of each path when it is checked, with its NAR size.
	Checked func(narSize uint64)
}

// Verify checks every path the store lists: that its references are in
// the store (the closure invariant), that its contents are present or,
// with checkContents, that they hash to its NAR hash; and first, where
// the blob store can, that its index agrees with its files (a lost or
// truncated pack). problem is told of each problem, in the words
// nix-store --verify uses where it has them.
func Verify(ctx context.Context, s Store, checkContents bool, problem func(msg string)) (VerifyReport, error) {
	return VerifyWithProgress(ctx, s, checkContents, problem, VerifyProgress{})
}

// VerifyWithProgress is Verify, telling p how it goes.
func VerifyWithProgress(ctx context.Context, s Store, checkContents bool, problem func(msg string), p VerifyProgress) (VerifyReport, error) {
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
		if msg := verifyContents(ctx, s, name, info, checkContents, blobs, &rep, p.Read); msg != "" {
			report(msg)
			damaged = true
		}
		if damaged {
			rep.Damaged++
		}
		if p.Checked != nil {
			p.Checked(info.GetNarinfo().GetNarSize())
		}
	}
	return rep, nil
}

// verifyContents checks one path's contents, counting the blobs and bytes
// checked; it returns the problem, or "".
func verifyContents(ctx context.Context, s Store, name string, info *storev1.PathInfo, checkContents bool, blobs map[castore.Digest]bool, rep *VerifyReport, read func(int)) string {
	node := castore.RenameNode(info.GetNode(), nil)
	if !checkContents {
		err := castore.ForEachFile(ctx, s.Dirs, node, func(d castore.Digest, size uint64) error {
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
			return fmt.Sprintf("path '%s' is damaged: %v", name, err)
		}
		return ""
	}
	w := &narHasher{h: sha256.New(), read: read}
	err := narcastore.Render(ctx, w, node, s.Blobs, s.Dirs)
	sum := w.h.Sum(nil)
	switch {
	case err != nil:
		return fmt.Sprintf("path '%s' is damaged: %v", name, err)
	case w.n != info.GetNarinfo().GetNarSize() || string(sum) != string(info.GetNarinfo().GetNarSha256()):
		return fmt.Sprintf("path '%s' was modified! expected hash 'sha256:%s', got 'sha256:%s'", name,
			nixbase32.EncodeToString(info.GetNarinfo().GetNarSha256()), nixbase32.EncodeToString(sum))
	}
	rep.Bytes += w.n
	castore.ForEachBlob(ctx, s.Dirs, node, func(d castore.Digest) error {
		if !blobs[d] {
			blobs[d] = true
			rep.Blobs++
		}
		return nil
	})
	return ""
}

// narHasher is the NAR's sha256 and size, telling read of each write.
type narHasher struct {
	h    hash.Hash
	n    uint64
	read func(int)
}

func (w *narHasher) Write(b []byte) (int, error) {
	w.h.Write(b)
	w.n += uint64(len(b))
	if w.read != nil {
		w.read(len(b))
	}
	return len(b), nil
}
