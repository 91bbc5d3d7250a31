package castore

import (
	"fmt"

	"github.com/tvix-go/tvix/castore/castorev1"
)

// Limits bound the shape of the trees a store accepts from clients. Nix
// has none of its own, but every limit here is far beyond what Nix itself
// can put on disk or what fits the wire, so no real store path meets one;
// they stop a crafted upload from making every later walk of the tree
// (rendering, the mount, verification) arbitrarily expensive. A zero field
// means no limit.
type Limits struct {
	// MaxDepth bounds how many directories are nested, the root
	// directory counting one.
	MaxDepth int
	// MaxEntries bounds the entries of one directory.
	MaxEntries int
	// MaxNameLen bounds an entry name, in bytes (never above MaxNameLen,
	// which the format itself enforces).
	MaxNameLen int
}

// Defaults. A path nested 4096 directories deep is at least 8 KiB long:
// twice Linux's PATH_MAX, so Nix could neither unpack nor build it (and it
// leaves room for other systems' store paths to be copied, which are
// never as deep). 131072 entries of the longest names still fit one gRPC
// message of the 64 MiB the services allow, so any directory within the
// limit can cross the wire.
const (
	DefaultMaxDepth   = 4096
	DefaultMaxEntries = 131072
)

// DefaultLimits are the limits a daemon applies unless configured.
func DefaultLimits() Limits {
	return Limits{MaxDepth: DefaultMaxDepth, MaxEntries: DefaultMaxEntries, MaxNameLen: MaxNameLen}
}

// LimitError says which limit a tree broke, and where.
type LimitError struct {
	// Limit is the setting's name, as the daemon's flags spell it
	// (without the dashes).
	Limit string
	Max   uint64
	// What broke it, e.g. "directory /a/b has 200000 entries".
	What string
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("%s: over the limit of %d (%s)", e.What, e.Max, e.Limit)
}

// Names of the limits, as flags and config keys spell them.
const (
	LimitDepth   = "max-depth"
	LimitEntries = "max-dir-entries"
	LimitNameLen = "max-name-length"
)

// CheckEntries checks the entry count and names of d (what can be checked
// without its children); where names it in the error.
func (l Limits) CheckEntries(d *castorev1.Directory, where string) error {
	n := len(d.GetDirectories()) + len(d.GetFiles()) + len(d.GetSymlinks())
	if l.MaxEntries > 0 && n > l.MaxEntries {
		return &LimitError{Limit: LimitEntries, Max: uint64(l.MaxEntries), What: fmt.Sprintf("directory %s has %d entries", where, n)}
	}
	if l.MaxNameLen <= 0 {
		return nil
	}
	check := func(name []byte) error {
		if len(name) > l.MaxNameLen {
			return &LimitError{Limit: LimitNameLen, Max: uint64(l.MaxNameLen), What: fmt.Sprintf("directory %s: entry name %.40q... is %d bytes", where, name, len(name))}
		}
		return nil
	}
	for _, c := range d.GetDirectories() {
		if err := check(c.GetName()); err != nil {
			return err
		}
	}
	for _, c := range d.GetFiles() {
		if err := check(c.GetName()); err != nil {
			return err
		}
	}
	for _, c := range d.GetSymlinks() {
		if err := check(c.GetName()); err != nil {
			return err
		}
	}
	return nil
}

// CheckDepth checks a nesting depth (the root directory is 1).
func (l Limits) CheckDepth(depth int, where string) error {
	if l.MaxDepth > 0 && depth > l.MaxDepth {
		return &LimitError{Limit: LimitDepth, Max: uint64(l.MaxDepth), What: fmt.Sprintf("directory %s is nested %d deep", where, depth)}
	}
	return nil
}

// limitedPutter checks a closure sent leaves first against Limits before
// the putter it wraps sees it, so nothing of a closure over a limit is
// stored. Depths are kept per digest as the directories arrive: a
// directory's depth is one more than its deepest child's, known because
// children come first, so the check is linear in the closure.
type limitedPutter struct {
	DirectoryPutter
	limits Limits
	depth  map[Digest]int
	err    error
}

// LimitPutter returns p checking every directory put against l.
func LimitPutter(p DirectoryPutter, l Limits) DirectoryPutter {
	if l == (Limits{}) {
		return p
	}
	return &limitedPutter{DirectoryPutter: p, limits: l, depth: map[Digest]int{}}
}

func (p *limitedPutter) Put(d *castorev1.Directory) error {
	if p.err != nil {
		return p.err
	}
	dg := DirectoryDigest(d)
	if err := p.limits.CheckEntries(d, dg.String()); err != nil {
		p.err = fmt.Errorf("put directory: %w", err)
		return p.err
	}
	depth := 1
	for _, c := range d.GetDirectories() {
		cd, err := DigestFromBytes(c.GetDigest())
		if err != nil {
			break // the wrapped putter names the bad digest
		}
		depth = max(depth, p.depth[cd]+1)
	}
	if err := p.limits.CheckDepth(depth, dg.String()); err != nil {
		p.err = fmt.Errorf("put directory: %w", err)
		return p.err
	}
	p.depth[dg] = depth
	return p.DirectoryPutter.Put(d)
}

func (p *limitedPutter) Close() (Digest, error) {
	if p.err != nil {
		// Not closing the wrapped putter: Close commits what it was
		// given, and a closure over a limit must leave the store as it
		// was. Putters hold nothing beyond their context's lifetime.
		return Digest{}, p.err
	}
	return p.DirectoryPutter.Close()
}
