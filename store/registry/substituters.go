package registry

import (
	"context"
	"errors"
	"fmt"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/combined"
	"github.com/tvix-go/tvix/store/closure"
	"github.com/tvix-go/tvix/store/nixcache"
	"github.com/tvix-go/tvix/store/pathinfo"
	"github.com/tvix-go/tvix/store/storev1"
)

// SubstituterError says which upstream could not be used, so a command
// can name the flag the user gave it in (--substituters, --from).
type SubstituterError struct {
	URL string
	Err error
}

func (e *SubstituterError) Error() string { return fmt.Sprintf("substituter %q: %v", e.URL, e.Err) }
func (e *SubstituterError) Unwrap() error { return e.Err }

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
			return &SubstituterError{URL: r, Err: err}
		}
		lendsCastore := scheme.Blob != nil && scheme.Directory != nil
		if !lendsCastore && len(o.Substitution.TrustedPublicKeys) == 0 && !o.Substitution.AllowUnsigned && u.Query().Get("trusted-public-keys") == "" {
			return &SubstituterError{URL: r, Err: errors.New("no --trusted-public-keys given; binary cache narinfos must be signed (or pass --allow-unsigned-substitutes)")}
		}
		far, err := o.PathInfoService(ctx, r)
		if err != nil {
			return &SubstituterError{URL: r, Err: err}
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
		s.Upstreams = append(s.Upstreams, farBlobs)
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
