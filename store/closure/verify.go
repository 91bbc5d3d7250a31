package closure

import (
	"context"
	"fmt"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/nix/nixbase32"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/narcastore"
)

// Verify checks every path the store lists: that its contents are present
// or, with checkContents, that they hash to its NAR hash. damaged is told
// of each problem in the words nix-store --verify uses. It returns how
// many paths it checked and how many were damaged.
func Verify(ctx context.Context, s Store, checkContents bool, damaged func(msg string)) (checked, bad int, err error) {
	for info, err := range s.PathInfos.List(ctx) {
		if err != nil {
			return checked, bad, fmt.Errorf("list paths: %w", err)
		}
		checked++
		name := storepath.StoreDir + "/" + string(castore.NodeName(info.GetNode()))
		node := castore.RenameNode(info.GetNode(), nil)
		if !checkContents {
			if err := CheckPresent(ctx, s, node); err != nil {
				damaged(fmt.Sprintf("path '%s' is damaged: %v", name, err))
				bad++
			}
			continue
		}
		size, sum, err := narcastore.CalculateNAR(ctx, node, s.Blobs, s.Dirs)
		switch {
		case err != nil:
			damaged(fmt.Sprintf("path '%s' is damaged: %v", name, err))
			bad++
		case size != info.GetNarinfo().GetNarSize() || string(sum[:]) != string(info.GetNarinfo().GetNarSha256()):
			damaged(fmt.Sprintf("path '%s' was modified! expected hash 'sha256:%s', got 'sha256:%s'", name,
				nixbase32.EncodeToString(info.GetNarinfo().GetNarSha256()), nixbase32.EncodeToString(sum[:])))
			bad++
		}
	}
	return checked, bad, nil
}
