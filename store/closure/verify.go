package closure

import (
	"context"
	"fmt"

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
	return VerifyWithProgress(ctx, s, checkContents, damaged, nil)
}

// VerifyWithProgress is Verify, telling done (if not nil) the NAR size of
// each path checked, for a caller that shows how a long check is going.
func VerifyWithProgress(ctx context.Context, s Store, checkContents bool, damaged func(msg string), done func(narSize uint64)) (checked, bad int, err error) {
	for info, err := range s.PathInfos.List(ctx) {
		if err != nil {
			return checked, bad, fmt.Errorf("list paths: %w", err)
		}
		checked++
		if msg := verifyPath(ctx, s, info, checkContents); msg != "" {
			damaged(msg)
			bad++
		}
		if done != nil {
			done(info.GetNarinfo().GetNarSize())
		}
	}
	return checked, bad, nil
}

// verifyPath says what is wrong with one path, or "".
func verifyPath(ctx context.Context, s Store, info *storev1.PathInfo, checkContents bool) string {
	name := storepath.StoreDir + "/" + string(castore.NodeName(info.GetNode()))
	node := castore.RenameNode(info.GetNode(), nil)
	if !checkContents {
		if err := CheckPresent(ctx, s, node); err != nil {
			return fmt.Sprintf("path '%s' is damaged: %v", name, err)
		}
		return ""
	}
	size, sum, err := narcastore.CalculateNAR(ctx, node, s.Blobs, s.Dirs)
	switch {
	case err != nil:
		return fmt.Sprintf("path '%s' is damaged: %v", name, err)
	case size != info.GetNarinfo().GetNarSize() || string(sum[:]) != string(info.GetNarinfo().GetNarSha256()):
		return fmt.Sprintf("path '%s' was modified! expected hash 'sha256:%s', got 'sha256:%s'", name,
			nixbase32.EncodeToString(info.GetNarinfo().GetNarSha256()), nixbase32.EncodeToString(sum[:]))
	}
	return ""
}
