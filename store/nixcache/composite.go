package nixcache

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"slices"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"

	"github.com/tvix-go/tvix/castore"

	"github.com/tvix-go/tvix/nix/narinfo"
	"github.com/tvix-go/tvix/nix/nixbase32"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/pathinfo"
	"github.com/tvix-go/tvix/store/storev1"
)

// Composite answers from Local first, then asks each substituter in
// order, storing what one returns in Local. Concurrent Gets of the same
// missing path share one fetch, so a NAR is ingested once.
type Composite struct {
	Local        pathinfo.Service
	Substituters []pathinfo.Service
	// Fill, if set, makes a substituted path's contents local, after its
	// references and before it is recorded: a substituter that lends its
	// castore read-through would otherwise leave a local record of
	// contents only it holds, broken when it goes away.
	Fill  func(ctx context.Context, info *storev1.PathInfo) error
	group singleflight.Group
}

func (c *Composite) Get(ctx context.Context, digest [storepath.DigestSize]byte) (*storev1.PathInfo, error) {
	info, err := c.Local.Get(ctx, digest)
	if !errors.Is(err, pathinfo.ErrNotFound) {
		return info, err
	}
	key := string(digest[:])
	// The fetch outlives one caller's cancellation: others may wait on it.
	// A caller that gives up stops waiting at once, though.
	ch := c.group.DoChan(key, func() (any, error) {
		return c.substitute(context.WithoutCancel(ctx), digest)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*storev1.PathInfo), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("substitute %s: %w", nixbase32.EncodeToString(digest[:]), context.Cause(ctx))
	}
}

func (c *Composite) substitute(ctx context.Context, digest [storepath.DigestSize]byte) (*storev1.PathInfo, error) {
	// Another fetch may have finished between our miss and now.
	if info, err := c.Local.Get(ctx, digest); !errors.Is(err, pathinfo.ErrNotFound) {
		return info, err
	}
	var errs []error
	for _, s := range c.Substituters {
		info, err := s.Get(ctx, digest)
		if errors.Is(err, pathinfo.ErrNotFound) {
			continue
		}
		if err != nil {
			// A broken or lying substituter must not hide a good one.
			slog.Warn("substituter failed", "hash", nixbase32.EncodeToString(digest[:]), "err", err)
			errs = append(errs, err)
			continue
		}
		// References first, the path last: a path recorded before its
		// references would be one whose closure a failed fetch or a
		// kill leaves broken.
		if err := c.references(ctx, info); err != nil {
			return nil, fmt.Errorf("substitute %s: %w", castore.NodeName(info.GetNode()), err)
		}
		if c.Fill != nil {
			if err := c.Fill(ctx, info); err != nil {
				return nil, fmt.Errorf("substitute %s: copy contents: %w", castore.NodeName(info.GetNode()), err)
			}
		}
		stored, err := c.Local.Put(ctx, info)
		if err != nil {
			return nil, fmt.Errorf("store substituted path info: %w", err)
		}
		return stored, nil
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("substitute %s: %w", nixbase32.EncodeToString(digest[:]), errors.Join(errs...))
	}
	return nil, fmt.Errorf("substitute %s: %w", nixbase32.EncodeToString(digest[:]), pathinfo.ErrNotFound)
}

// narInfoSource is a substituter that can say what it offers without
// fetching the contents (a Nix binary cache: the narinfo alone).
type narInfoSource interface {
	NarInfo(ctx context.Context, digest [storepath.DigestSize]byte) (*narinfo.NarInfo, error)
}

// Peek says what the first substituter that has the path offers, as a
// narinfo, fetching no contents and recording nothing locally: what Nix's
// queries of substitutable paths answer. Substituters that cannot tell
// without fetching (none here: a tvix daemon's Get is a lookup) are asked
// with Get.
func (c *Composite) Peek(ctx context.Context, digest [storepath.DigestSize]byte) (*narinfo.NarInfo, error) {
	var errs []error
	for _, s := range c.Substituters {
		var ni *narinfo.NarInfo
		var err error
		if src, ok := castore.As[narInfoSource](s); ok {
			ni, err = src.NarInfo(ctx, digest)
		} else {
			var info *storev1.PathInfo
			if info, err = s.Get(ctx, digest); err == nil {
				ni, err = pathinfo.ToNarInfo(info)
			}
		}
		switch {
		case errors.Is(err, pathinfo.ErrNotFound):
		case err != nil:
			errs = append(errs, err)
		default:
			return ni, nil
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("ask substituters for %s: %w", nixbase32.EncodeToString(digest[:]), errors.Join(errs...))
	}
	return nil, fmt.Errorf("ask substituters for %s: %w", nixbase32.EncodeToString(digest[:]), pathinfo.ErrNotFound)
}

// references makes every reference of info local (substituting it, and so
// its own references first), a few at a time.
func (c *Composite) references(ctx context.Context, info *storev1.PathInfo) error {
	self := string(castore.NodeName(info.GetNode()))
	sp, err := storepath.FromBasename(self)
	if err != nil {
		return err
	}
	chain := append(slices.Clone(substituting(ctx)), sp.Digest)
	g, gctx := errgroup.WithContext(context.WithValue(ctx, chainKey{}, chain))
	g.SetLimit(referenceParallel)
	for i, ref := range info.GetReferences() {
		name := info.GetNarinfo().GetReferenceNames()[i]
		if name == self {
			continue
		}
		var d [storepath.DigestSize]byte
		copy(d[:], ref)
		if slices.Contains(chain, d) {
			// Waiting for it would wait for ourselves.
			return fmt.Errorf("reference %s: a reference cycle (the substituter's path infos are inconsistent)", name)
		}
		g.Go(func() error {
			if _, err := c.Get(gctx, d); err != nil {
				return fmt.Errorf("reference %s: %w", name, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// chainKey holds the paths whose references a substitution is fetching,
// outermost first.
type chainKey struct{}

func substituting(ctx context.Context) [][storepath.DigestSize]byte {
	c, _ := ctx.Value(chainKey{}).([][storepath.DigestSize]byte)
	return c
}

// referenceParallel is how many references of one path are fetched at
// once; nested, as each fetches its own.
const referenceParallel = 4

func (c *Composite) Put(ctx context.Context, info *storev1.PathInfo) (*storev1.PathInfo, error) {
	return c.Local.Put(ctx, info)
}

// List lists Local only: substituters cannot be listed.
func (c *Composite) List(ctx context.Context) iter.Seq2[*storev1.PathInfo, error] {
	return c.Local.List(ctx)
}

// InProcess is true only without substituters: a miss asks them.
func (c *Composite) InProcess() bool { return len(c.Substituters) == 0 && castore.InProcess(c.Local) }

// Unwrap lets callers find the local service's abilities (batch puts, NAR
// calculation): every write goes there unchanged.
func (c *Composite) Unwrap() any { return c.Local }

func (c *Composite) Close() error {
	errs := []error{c.Local.Close()}
	for _, s := range c.Substituters {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}
