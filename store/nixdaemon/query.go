package nixdaemon

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/nix/derivation"
	"github.com/tvix-go/tvix/nix/narinfo"
	"github.com/tvix-go/tvix/nix/nixbase32"
	"github.com/tvix-go/tvix/nix/nixhash"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/nix/workerproto"
	"github.com/tvix-go/tvix/store/pathinfo"
	"github.com/tvix-go/tvix/store/storev1"
)

// parsePath parses an absolute store path a client sent.
func parsePath(s string) (storepath.StorePath, error) {
	sp, err := storepath.Parse(s)
	if err != nil {
		return sp, fmt.Errorf("path '%s' is not a valid store path: %w", s, err)
	}
	return sp, nil
}

func parsePaths(ss []string) ([]storepath.StorePath, error) {
	out := make([]storepath.StorePath, 0, len(ss))
	for _, s := range ss {
		sp, err := parsePath(s)
		if err != nil {
			return nil, err
		}
		out = append(out, sp)
	}
	return out, nil
}

// pathArg reads a request's one argument, a store path, opens the
// stderr channel and parses it: a bad path is the client's error, the
// stream stays in step.
func (c *conn) pathArg(what string) (storepath.StorePath, error) {
	s := c.r.Path(what)
	if err := c.args(); err != nil {
		return storepath.StorePath{}, err
	}
	c.start()
	return parsePath(s)
}

// validInfo is the protocol's ValidPathInfo of a path that must be valid.
func (c *conn) validInfo(sp storepath.StorePath) (workerproto.PathInfo, error) {
	info, err := c.require(sp)
	if err != nil {
		return workerproto.PathInfo{}, err
	}
	return wireInfo(info)
}

// lookup returns the path's info in the store (never substituting), nil
// if the path is not valid.
func (c *conn) lookup(sp storepath.StorePath) (*storev1.PathInfo, error) {
	info, err := c.srv.Store.PathInfos.Get(c.ctx, sp.Digest)
	if errors.Is(err, pathinfo.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", sp, err)
	}
	// The digest matched; a record under another name is not this path.
	if string(castore.NodeName(info.GetNode())) != sp.Basename() {
		return nil, nil
	}
	return info, nil
}

// require is lookup for paths that must be valid, with Nix's words.
func (c *conn) require(sp storepath.StorePath) (*storev1.PathInfo, error) {
	info, err := c.lookup(sp)
	if err == nil && info == nil {
		err = fmt.Errorf("path '%s' is not valid", sp)
	}
	return info, err
}

// substitute makes sp valid through the substituters if it is not, and
// says whether it is valid now.
func (c *conn) substitute(sp storepath.StorePath) (*storev1.PathInfo, error) {
	if info, err := c.lookup(sp); info != nil || err != nil {
		return info, err
	}
	sub := c.srv.Store.Substituting
	if sub == nil || !c.settings.useSubstitutes {
		return nil, nil
	}
	act := c.startActivity(workerproto.LvlInfo, workerproto.ActSubstitute,
		fmt.Sprintf("copying path '%s' from the tvix daemon's substituters", sp),
		[]workerproto.Field{workerproto.TextField(sp.String()), workerproto.TextField("tvix")})
	defer act.stop()
	info, err := sub.Get(c.ctx, sp.Digest)
	if errors.Is(err, pathinfo.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("substitute %s: %w", sp, err)
	}
	return info, nil
}

// wireInfo turns a PathInfo into the protocol's ValidPathInfo.
func wireInfo(info *storev1.PathInfo) (workerproto.PathInfo, error) {
	ni, err := pathinfo.ToNarInfo(info)
	if err != nil {
		return workerproto.PathInfo{}, err
	}
	return wireNarInfo(ni), nil
}

func wireNarInfo(ni *narinfo.NarInfo) workerproto.PathInfo {
	pi := workerproto.PathInfo{Path: ni.StorePath.String(), NarHash: ni.NarHash.Hex(), NarSize: ni.NarSize}
	if ni.Deriver != nil {
		pi.Deriver = ni.Deriver.String()
	}
	for _, r := range ni.References {
		pi.References = append(pi.References, r.String())
	}
	for _, s := range ni.Signatures {
		pi.Sigs = append(pi.Sigs, s.String())
	}
	if ni.CA != nil {
		pi.CA = ni.CA.String()
	}
	return pi
}

// signedInfo is wireInfo with the daemon's signature added, if it signs.
func (c *conn) signedInfo(info *storev1.PathInfo) (workerproto.PathInfo, error) {
	ni, err := pathinfo.ToNarInfo(info)
	if err != nil {
		return workerproto.PathInfo{}, err
	}
	if k := c.srv.Store.SigningKey; k != nil {
		ni.Sign(*k)
	}
	return wireNarInfo(ni), nil
}

// narInfoFromWire reads a client's ValidPathInfo.
func narInfoFromWire(pi workerproto.PathInfo) (*narinfo.NarInfo, error) {
	sp, err := parsePath(pi.Path)
	if err != nil {
		return nil, err
	}
	ni := &narinfo.NarInfo{StorePath: sp, NarSize: pi.NarSize}
	if ni.NarHash, err = nixhash.ParseAs(nixhash.SHA256, pi.NarHash); err != nil {
		return nil, fmt.Errorf("path '%s': NAR hash: %w", sp, err)
	}
	if pi.Deriver != "" {
		d, err := parsePath(pi.Deriver)
		if err != nil {
			return nil, fmt.Errorf("path '%s': deriver: %w", sp, err)
		}
		ni.Deriver = &d
	}
	if ni.References, err = parsePaths(pi.References); err != nil {
		return nil, fmt.Errorf("path '%s': references: %w", sp, err)
	}
	for _, s := range pi.Sigs {
		sig, err := narinfo.ParseSignature(s)
		if err != nil {
			return nil, fmt.Errorf("path '%s': signature: %w", sp, err)
		}
		ni.Signatures = append(ni.Signatures, sig)
	}
	if pi.CA != "" {
		ca, err := nixhash.ParseCA(pi.CA)
		if err != nil {
			return nil, fmt.Errorf("path '%s': %w", sp, err)
		}
		ni.CA = &ca
	}
	return ni, nil
}

func pathStrings(ps []storepath.StorePath) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

func (c *conn) isValidPath() error {
	sp, err := c.pathArg("path")
	if err != nil {
		return err
	}
	info, err := c.lookup(sp)
	if err != nil {
		return err
	}
	c.stop(nil)
	c.w.Bool(info != nil)
	return nil
}

func (c *conn) queryValidPaths() error {
	ss := c.r.Paths("paths")
	substitute := false
	if c.minor() >= 27 {
		substitute = c.r.Bool("substitute")
	}
	if err := c.args(); err != nil {
		return err
	}
	c.start()
	paths, err := parsePaths(ss)
	if err != nil {
		return err
	}
	var valid []storepath.StorePath
	for _, sp := range paths {
		var info *storev1.PathInfo
		if substitute {
			info, err = c.substitute(sp)
		} else {
			info, err = c.lookup(sp)
		}
		if err != nil {
			return err
		}
		if info != nil {
			valid = append(valid, sp)
		}
	}
	c.stop(nil)
	c.w.StringSet(pathStrings(valid))
	return nil
}

// substitutePeeker is a store with substituters behind it that can say
// what they offer without fetching it (nixcache.Composite).
type substitutePeeker interface {
	Peek(ctx context.Context, digest [storepath.DigestSize]byte) (*narinfo.NarInfo, error)
}

// substitutable says which of paths the substituters can provide, and
// what they say of each. A store that cannot peek is read through: asking
// is fetching, and a path found is valid afterwards.
func (c *conn) substitutable(paths []storepath.StorePath) (map[storepath.StorePath]*narinfo.NarInfo, error) {
	out := map[storepath.StorePath]*narinfo.NarInfo{}
	if c.srv.Store.Substituting == nil || !c.settings.useSubstitutes {
		return out, nil
	}
	peeker, canPeek := castore.As[substitutePeeker](c.srv.Store.Substituting)
	for _, sp := range paths {
		if info, err := c.lookup(sp); err != nil {
			return nil, err
		} else if info != nil {
			continue // valid paths are not substitutable, as in Nix
		}
		var ni *narinfo.NarInfo
		var err error
		if canPeek {
			ni, err = peeker.Peek(c.ctx, sp.Digest)
			if errors.Is(err, pathinfo.ErrNotFound) {
				continue
			}
		} else {
			var info *storev1.PathInfo
			if info, err = c.substitute(sp); err == nil && info != nil {
				ni, err = pathinfo.ToNarInfo(info)
			}
		}
		if err != nil {
			c.logLine(workerproto.LvlWarn, fmt.Sprintf("warning: %v", err))
			continue
		}
		if ni != nil {
			out[sp] = ni
		}
	}
	return out, nil
}

// downloadSize is what fetching ni costs: the file, if the cache says
// how large it is, else the NAR.
func downloadSize(ni *narinfo.NarInfo) uint64 {
	if ni.FileSize > 0 {
		return ni.FileSize
	}
	return ni.NarSize
}

func (c *conn) hasSubstitutes() error {
	sp, err := c.pathArg("path")
	if err != nil {
		return err
	}
	subs, err := c.substitutable([]storepath.StorePath{sp})
	if err != nil {
		return err
	}
	c.stop(nil)
	c.w.Bool(subs[sp] != nil)
	return nil
}

func (c *conn) querySubstitutablePaths() error {
	ss := c.r.Paths("paths")
	if err := c.args(); err != nil {
		return err
	}
	c.start()
	paths, err := parsePaths(ss)
	if err != nil {
		return err
	}
	subs, err := c.substitutable(paths)
	if err != nil {
		return err
	}
	var found []storepath.StorePath
	for sp := range subs {
		found = append(found, sp)
	}
	c.stop(nil)
	c.w.StringSet(pathStrings(found))
	return nil
}

func (c *conn) querySubstitutablePathInfos() error {
	var ss []string
	if c.minor() < 22 {
		ss = c.r.Paths("paths")
	} else {
		m := c.r.StringMap("paths")
		for p := range m {
			ss = append(ss, p)
		}
	}
	if err := c.args(); err != nil {
		return err
	}
	c.start()
	paths, err := parsePaths(ss)
	if err != nil {
		return err
	}
	subs, err := c.substitutable(paths)
	if err != nil {
		return err
	}
	type offer struct {
		pi       workerproto.PathInfo
		download uint64
	}
	var offers []offer
	for _, ni := range subs {
		offers = append(offers, offer{wireNarInfo(ni), downloadSize(ni)})
	}
	sort.Slice(offers, func(i, j int) bool { return offers[i].pi.Path < offers[j].pi.Path })
	c.stop(nil)
	c.w.Uint64(uint64(len(offers)))
	for _, o := range offers {
		pi := o.pi
		c.w.String(pi.Path)
		c.w.String(pi.Deriver)
		c.w.StringSet(pi.References)
		c.w.Uint64(o.download)
		c.w.Uint64(pi.NarSize)
	}
	return nil
}

// queryPathString answers QueryPathHash and QueryDeriver (both obsolete,
// older clients' ways to one field of a valid path's info).
func (c *conn) queryPathString() error {
	sp, err := c.pathArg("path")
	if err != nil {
		return err
	}
	pi, err := c.validInfo(sp)
	if err != nil {
		return err
	}
	c.stop(nil)
	if c.lastOp == workerproto.OpQueryDeriver {
		c.w.String(pi.Deriver)
	} else {
		c.w.String(pi.NarHash)
	}
	return nil
}

// queryPathSet answers the operations that map one path to a set:
// references, referrers, valid derivers and (obsolete) derivation outputs.
func (c *conn) queryPathSet() error {
	op := c.lastOp
	sp, err := c.pathArg("path")
	if err != nil {
		return err
	}
	var out []string
	switch op {
	case workerproto.OpQueryReferences:
		pi, err := c.validInfo(sp)
		if err != nil {
			return err
		}
		out = pi.References
	case workerproto.OpQueryReferrers:
		if out, err = c.referrers(sp); err != nil {
			return err
		}
	case workerproto.OpQueryValidDerivers:
		info, err := c.lookup(sp)
		if err != nil {
			return err
		}
		if info != nil {
			if pi, err := wireInfo(info); err == nil && pi.Deriver != "" {
				if d, err := parsePath(pi.Deriver); err == nil {
					if dinfo, err := c.lookup(d); err == nil && dinfo != nil {
						out = []string{pi.Deriver}
					}
				}
			}
		}
	case workerproto.OpQueryDerivationOutputs:
		drv, err := c.readDerivation(sp)
		if err != nil {
			return err
		}
		for _, o := range drv.Outputs {
			if o.Path != "" {
				out = append(out, o.Path)
			}
		}
	}
	c.stop(nil)
	c.w.StringSet(out)
	return nil
}

// referrerIndex is a path info store that finds referrers by an index
// (PostgreSQL's); the others are scanned.
type referrerIndex interface {
	Referrers(ctx context.Context, digest [storepath.DigestSize]byte) ([]*storev1.PathInfo, error)
}

// referrers lists the valid paths that refer to sp.
func (c *conn) referrers(sp storepath.StorePath) ([]string, error) {
	var out []string
	name := func(info *storev1.PathInfo) {
		out = append(out, storepath.StoreDir+"/"+string(castore.NodeName(info.GetNode())))
	}
	if idx, ok := castore.As[referrerIndex](c.srv.Store.PathInfos); ok {
		infos, err := idx.Referrers(c.ctx, sp.Digest)
		if err != nil {
			return nil, fmt.Errorf("query referrers of %s: %w", sp, err)
		}
		for _, info := range infos {
			name(info)
		}
		return out, nil
	}
	for info, err := range c.srv.Store.PathInfos.List(c.ctx) {
		if err != nil {
			return nil, fmt.Errorf("query referrers of %s: %w", sp, err)
		}
		for _, ref := range info.GetReferences() {
			if string(ref) == string(sp.Digest[:]) {
				name(info)
				break
			}
		}
	}
	return out, nil
}

// readDerivation reads a .drv from the store.
func (c *conn) readDerivation(sp storepath.StorePath) (*derivation.Derivation, error) {
	if !strings.HasSuffix(sp.Name, ".drv") {
		return nil, fmt.Errorf("path '%s' is not a derivation", sp)
	}
	info, err := c.require(sp)
	if err != nil {
		return nil, err
	}
	return pathinfo.ReadDerivation(c.ctx, c.srv.Store.Blobs, info)
}

// derivationArg reads a derivation path argument and the derivation's
// output names, sorted.
func (c *conn) derivationArg() (*derivation.Derivation, []string, error) {
	sp, err := c.pathArg("path")
	if err != nil {
		return nil, nil, err
	}
	drv, err := c.readDerivation(sp)
	if err != nil {
		return nil, nil, err
	}
	names := slices.Sorted(maps.Keys(drv.Outputs))
	return drv, names, nil
}

func (c *conn) queryDerivationOutputNames() error {
	_, names, err := c.derivationArg()
	if err != nil {
		return err
	}
	c.stop(nil)
	c.w.StringSet(names)
	return nil
}

func (c *conn) queryDerivationOutputMap() error {
	drv, names, err := c.derivationArg()
	if err != nil {
		return err
	}
	c.stop(nil)
	c.w.Uint64(uint64(len(names)))
	for _, n := range names {
		c.w.String(n)
		c.w.String(drv.Outputs[n].Path)
	}
	return nil
}

func (c *conn) queryPathFromHashPart() error {
	hashPart := c.r.Path("hash part")
	if err := c.args(); err != nil {
		return err
	}
	c.start()
	found := ""
	if b, err := nixbase32.DecodeString(hashPart); err == nil && len(b) == storepath.DigestSize {
		var sp storepath.StorePath
		copy(sp.Digest[:], b)
		info, err := c.srv.Store.PathInfos.Get(c.ctx, sp.Digest)
		if err != nil && !errors.Is(err, pathinfo.ErrNotFound) {
			return fmt.Errorf("query path of hash part %s: %w", hashPart, err)
		}
		if info != nil {
			found = storepath.StoreDir + "/" + string(castore.NodeName(info.GetNode()))
		}
	}
	c.stop(nil)
	c.w.String(found)
	return nil
}

func (c *conn) queryPathInfo() error {
	sp, err := c.pathArg("path")
	if err != nil {
		return err
	}
	info, err := c.lookup(sp)
	if err != nil {
		return err
	}
	if info == nil && c.minor() < 17 {
		return fmt.Errorf("path '%s' is not valid", sp)
	}
	var pi workerproto.PathInfo
	if info != nil {
		if pi, err = c.signedInfo(info); err != nil {
			return err
		}
	}
	c.stop(nil)
	if c.minor() >= 17 {
		c.w.Bool(info != nil)
	}
	if info != nil {
		c.w.WritePathInfo(pi, false)
	}
	return nil
}

func (c *conn) queryAllValidPaths() error {
	c.start()
	var out []string
	for info, err := range c.srv.Store.PathInfos.List(c.ctx) {
		if err != nil {
			return fmt.Errorf("list paths: %w", err)
		}
		out = append(out, storepath.StoreDir+"/"+string(castore.NodeName(info.GetNode())))
	}
	c.stop(nil)
	c.w.StringSet(out)
	return nil
}

func (c *conn) queryRealisation() error {
	c.r.String("output id")
	if err := c.args(); err != nil {
		return err
	}
	c.start()
	c.stop(nil)
	// No content-addressed derivations here: no realisations.
	c.w.Uint64(0)
	return nil
}
