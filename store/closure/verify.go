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

// Verify checks every path the store lists: that its contents are present
// or, with checkContents, that they hash to its NAR hash. damaged is told
// of each problem in the words nix-store --verify uses. It returns how
// many paths it checked and how many were damaged.
func Verify(ctx context.Context, s Store, checkContents bool, damaged func(msg string)) (checked, bad int, err error) {
	return VerifyWithProgress(ctx, s, checkContents, damaged, VerifyProgress{})
}

// VerifyProgress is told how a verification goes, for a caller that
// shows it; either func may be nil.
type VerifyProgress struct {
	// Read is told of NAR bytes as they are hashed (checkContents).
	Read func(n int)
	// Checked is told of each path when it is checked, with its NAR size.
	Checked func(narSize uint64)
}

// VerifyWithProgress is Verify, telling p how it goes.
func VerifyWithProgress(ctx context.Context, s Store, checkContents bool, damaged func(msg string), p VerifyProgress) (checked, bad int, err error) {
	for info, err := range s.PathInfos.List(ctx) {
		if err != nil {
			return checked, bad, fmt.Errorf("list paths: %w", err)
		}
		checked++
		if msg := verifyPath(ctx, s, info, checkContents, p.Read); msg != "" {
			damaged(msg)
			bad++
		}
		if p.Checked != nil {
			p.Checked(info.GetNarinfo().GetNarSize())
		}
	}
	return checked, bad, nil
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

// verifyPath says what is wrong with one path, or "".
func verifyPath(ctx context.Context, s Store, info *storev1.PathInfo, checkContents bool, read func(int)) string {
	name := storepath.StoreDir + "/" + string(castore.NodeName(info.GetNode()))
	node := castore.RenameNode(info.GetNode(), nil)
	if !checkContents {
		if err := CheckPresent(ctx, s, node); err != nil {
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
	return ""
}
