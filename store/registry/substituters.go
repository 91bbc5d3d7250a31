package registry

import (
	"context"
	"fmt"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/combined"
	"github.com/tvix-go/tvix/store/closure"
	"github.com/tvix-go/tvix/store/nixcache"
	"github.com/tvix-go/tvix/store/pathinfo"
	"github.com/tvix-go/tvix/store/storev1"
)

// withSubstituters puts upstreams behind the local path info service, asked
// in order for paths the local store lacks. What an upstream can serve
// decides how it is used, not its URL: every upstream is a path info
// service; one that also serves blobs and directories (another tvix) lends
// its castore read-through, fetched as it is read; one that does not (a
// binary cache) fills the local castore with the NARs it fetches.
func (s *Services) withSubstituters(ctx context.Context, o *Opener, raw []string) error {
	if len(raw) == 0 {
		return nil
	}
	var subs []pathinfo.Service
	lent := false
	for _, r := range raw {
		scheme, u, err := o.reg.Scheme(PathInfo, r)
		if err != nil {
			return fmt.Errorf("--substituters: %w", err)
		}
		lendsCastore := scheme.Blob != nil && scheme.Directory != nil
		if !lendsCastore && len(o.Substitution.TrustedPublicKeys) == 0 && !o.Substitution.AllowUnsigned && u.Query().Get("trusted-public-keys") == "" {
			return fmt.Errorf("--substituters %q: no --trusted-public-keys given; binary cache narinfos must be signed (or pass --allow-unsigned-substitutes)", r)
		}
		far, err := o.PathInfoService(ctx, r)
		if err != nil {
			return err
		}
		s.closers = append(s.closers, far)
		subs = append(subs, far)
		if !lendsCastore {
			continue
		}
		lent = true
		farBlobs, err := o.BlobService(ctx, r)
		if err != nil {
			return err
		}
		s.closers = append(s.closers, farBlobs)
		farDirs, err := o.DirectoryService(ctx, r)
		if err != nil {
			return err
		}
		s.closers = append(s.closers, farDirs)
		s.Blobs = combined.Blobs{Near: s.Blobs, Far: farBlobs}
		s.Directories = combined.Directories{Near: s.Directories, Far: farDirs}
	}
	c := &nixcache.Composite{Local: s.PathInfos, Substituters: subs}
	if lent {
		// Contents first, then the record: a path recorded here is
		// readable here, whatever becomes of the upstream.
		st := closure.Store{Blobs: s.Blobs, Dirs: s.Directories}
		c.Fill = func(ctx context.Context, info *storev1.PathInfo) error {
			return closure.Materialize(ctx, st, castore.RenameNode(info.GetNode(), nil))
		}
	}
	s.PathInfos = c
	return nil
}
