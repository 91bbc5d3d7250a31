package nixdaemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/nix/narinfo"
	"github.com/tvix-go/tvix/nix/nixbase32"
	"github.com/tvix-go/tvix/nix/nixhash"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/nix/workerproto"
	"github.com/tvix-go/tvix/store/importer"
	"github.com/tvix-go/tvix/store/narcastore"
	"github.com/tvix-go/tvix/store/pathinfo"
	"github.com/tvix-go/tvix/store/storev1"
	"google.golang.org/protobuf/proto"
)

// errAbort ends a connection without another byte: a NAR whose rendering
// failed halfway cannot be followed by an error message, the client
// would read it as NAR bytes. Cut short, the NAR fails its hash check.
type errAbort struct{ err error }

func (e errAbort) Error() string { return e.err.Error() }
func (e errAbort) Unwrap() error { return e.err }

// trustedInfo says whether a path may be added as the client describes
// it, following Nix's LocalStore::addToStore: with require-sigs, a path
// must come from a trusted client that vouches for it (ultimate, or
// asking not to check signatures), be content-addressed (its CA computes
// its store path; the contents are checked against the CA after they
// arrive), or carry a signature by a trusted key. checkCA tells the
// caller to check the contents.
func (c *conn) trustedInfo(ni *narinfo.NarInfo, ultimate, dontCheckSigs bool) (checkCA bool, err error) {
	st := c.srv.Store
	if c.trusted && (dontCheckSigs || ultimate) || !st.RequireSigs {
		return false, nil
	}
	if len(ni.Verify(st.TrustedKeys)) > 0 {
		return false, nil
	}
	if ni.CA != nil {
		refs := make([]storepath.StorePath, 0, len(ni.References))
		self := false
		for _, r := range ni.References {
			if r == ni.StorePath {
				self = true
			} else {
				refs = append(refs, r)
			}
		}
		if sp, err := ni.CA.StorePath(ni.StorePath.Name, refs, self); err == nil && sp == ni.StorePath {
			return true, nil
		}
		return false, fmt.Errorf("path '%s' claims to be content-addressed (%s) but is not", ni.StorePath, ni.CA)
	}
	return false, fmt.Errorf("cannot add path '%s' because it lacks a signature by a trusted key", ni.StorePath)
}

// importNAR adds the path ni describes from the NAR in r, which it reads
// to its end whatever happens. A path already valid is left as it is
// (its contents are immutable) and gains the new signatures.
func (c *conn) importNAR(ni *narinfo.NarInfo, r io.Reader, checkCA bool) error {
	st := c.srv.Store
	if err := c.tempRoot(ni.StorePath); err != nil {
		io.Copy(io.Discard, r)
		return err
	}
	existing, err := c.lookup(ni.StorePath)
	if err != nil {
		io.Copy(io.Discard, r)
		return err
	}
	if existing != nil {
		if _, err := io.Copy(io.Discard, r); err != nil {
			return fmt.Errorf("import %s: %w", ni.StorePath, err)
		}
		return c.mergeSignatures(existing, ni.Signatures)
	}
	root, size, sum, err := narcastore.Ingest(c.ctx, r, st.Blobs, st.Dirs, narcastore.WithLimits(st.Limits))
	if err != nil {
		io.Copy(io.Discard, r)
		return fmt.Errorf("import %s: %w", ni.StorePath, err)
	}
	if size != ni.NarSize || string(sum[:]) != string(ni.NarHash.Digest) {
		return fmt.Errorf("hash mismatch importing path '%s';\n  specified: %s (%d bytes)\n  got:       sha256:%s (%d bytes)",
			ni.StorePath, ni.NarHash, ni.NarSize, nixbase32.EncodeToString(sum[:]), size)
	}
	if checkCA {
		if err := checkContentAddress(c.ctx, st, ni, root, sum); err != nil {
			return err
		}
	}
	info, err := pathinfo.FromNarInfo(ni, root)
	if err != nil {
		return fmt.Errorf("import %s: %w", ni.StorePath, err)
	}
	return c.record(info)
}

// record stores a new path's info once its references are valid.
func (c *conn) record(info *storev1.PathInfo) error {
	st := c.srv.Store
	name := string(castore.NodeName(info.GetNode()))
	if err := pathinfo.CheckReferences(c.ctx, st.PathInfos, info); err != nil {
		if errors.Is(err, pathinfo.ErrMissingReference) {
			return fmt.Errorf("cannot add path '%s/%s': %w (add its references first)", storepath.StoreDir, name, err)
		}
		return fmt.Errorf("add %s: %w", name, err)
	}
	if _, err := st.PathInfos.Put(c.ctx, info); err != nil {
		return fmt.Errorf("add %s: %w", name, err)
	}
	return nil
}

func (c *conn) mergeSignatures(info *storev1.PathInfo, sigs []narinfo.Signature) error {
	if len(sigs) == 0 {
		return nil
	}
	// A copy: the service may hand out what it holds.
	next := proto.Clone(info).(*storev1.PathInfo)
	for _, s := range sigs {
		next.Narinfo.Signatures = append(next.Narinfo.Signatures, &storev1.NARInfo_Signature{Name: s.Name, Data: s.Data})
	}
	if _, err := c.srv.Store.PathInfos.Put(c.ctx, next); err != nil {
		return fmt.Errorf("add signatures to %s: %w", castore.NodeName(info.GetNode()), err)
	}
	return nil
}

// checkContentAddress checks that the contents are what their content
// address says, for paths trusted only because of it.
func checkContentAddress(ctx context.Context, st Store, ni *narinfo.NarInfo, root *castorev1.Node, narSHA [32]byte) error {
	ca := *ni.CA
	var got []byte
	switch {
	case ca.Method == nixhash.Recursive && ca.Hash.Algo == nixhash.SHA256:
		got = narSHA[:]
	case ca.Method == nixhash.Recursive:
		h := ca.Hash.Algo.New()
		if err := narcastore.Render(ctx, h, root, st.Blobs, st.Dirs); err != nil {
			return fmt.Errorf("check content address of %s: %w", ni.StorePath, err)
		}
		got = h.Sum(nil)
	default:
		f := root.GetFile()
		if f == nil || f.GetExecutable() {
			return fmt.Errorf("path '%s' has content address %s but is not a regular file", ni.StorePath, ca)
		}
		d, err := castore.DigestFromBytes(f.GetDigest())
		if err != nil {
			return err
		}
		rc, err := st.Blobs.Open(ctx, d)
		if err != nil {
			return fmt.Errorf("check content address of %s: %w", ni.StorePath, err)
		}
		defer rc.Close()
		h := ca.Hash.Algo.New()
		if _, err := io.Copy(h, rc); err != nil {
			return fmt.Errorf("check content address of %s: %w", ni.StorePath, err)
		}
		got = h.Sum(nil)
	}
	if string(got) != string(ca.Hash.Digest) {
		return fmt.Errorf("path '%s' claims content address %s, but its contents hash to %s",
			ni.StorePath, ca, nixbase32.EncodeToString(got))
	}
	return nil
}

func (c *conn) addToStoreNar() error {
	pi := c.r.ReadPathInfo(true)
	c.r.Bool("repair")
	dontCheckSigs := c.r.Bool("don't check signatures")
	if err := c.args(); err != nil {
		return err
	}
	if c.minor() < 23 {
		return errFatal{fmt.Errorf("AddToStoreNar of protocol 1.%d (before 1.23, unframed) is not supported", c.minor())}
	}
	c.start()
	framed := c.r.Framed()
	err := c.addNAR(pi, framed, dontCheckSigs)
	if derr := framed.Drain(); derr != nil {
		return errFatal{derr}
	}
	if err != nil {
		return err
	}
	c.stop(nil)
	return nil
}

// addNAR checks and imports one path from its NAR in r.
func (c *conn) addNAR(pi workerproto.PathInfo, r io.Reader, dontCheckSigs bool) error {
	ni, err := narInfoFromWire(pi)
	if err != nil {
		return err
	}
	checkCA, err := c.trustedInfo(ni, pi.Ultimate, dontCheckSigs)
	if err != nil {
		return err
	}
	return c.importNAR(ni, r, checkCA)
}

func (c *conn) addMultipleToStore() error {
	c.r.Bool("repair")
	dontCheckSigs := c.r.Bool("don't check signatures")
	if err := c.args(); err != nil {
		return err
	}
	c.start()
	framed := c.r.Framed()
	err := c.addMultiple(framed, dontCheckSigs)
	if derr := framed.Drain(); derr != nil {
		return errFatal{derr}
	}
	if err != nil {
		return err
	}
	c.stop(nil)
	return nil
}

// addMultiple reads the paths of AddMultipleToStore: a count, then each
// path's ValidPathInfo and NAR, references before referrers.
func (c *conn) addMultiple(framed io.Reader, dontCheckSigs bool) error {
	in := workerproto.NewReader(framed)
	n := in.Uint64("path count")
	if err := in.Err(); err != nil {
		return err
	}
	act := c.startActivity(workerproto.LvlInfo, workerproto.ActCopyPath, fmt.Sprintf("receiving %d paths", n), nil)
	defer act.stop()
	for i := uint64(0); i < n; i++ {
		in.ResetBudget(workerproto.DefaultBudget)
		pi := in.ReadPathInfo(true)
		if err := in.Err(); err != nil {
			return fmt.Errorf("path %d of %d: %w", i+1, n, err)
		}
		pi.Ultimate = false // as Nix: the sender's word does not make it ultimate here
		nar := io.LimitReader(in.Buffered(), int64(pi.NarSize))
		if err := c.addNAR(pi, nar, dontCheckSigs); err != nil {
			return err
		}
		if _, err := io.Copy(io.Discard, nar); err != nil {
			return fmt.Errorf("path %s: %w", pi.Path, err)
		}
	}
	return nil
}

// parseCAMethod reads AddToStore's method: "text:sha256", "fixed:sha256"
// or "fixed:r:<algo>".
func parseCAMethod(s string) (nixhash.Method, nixhash.Algo, error) {
	m := nixhash.Flat
	rest, ok := strings.CutPrefix(s, "text:")
	if ok {
		m = nixhash.Text
	} else if rest, ok = strings.CutPrefix(s, "fixed:"); ok {
		if r, isRec := strings.CutPrefix(rest, "r:"); isRec {
			m, rest = nixhash.Recursive, r
		}
	} else {
		return 0, 0, fmt.Errorf("content-address method %q: want text:sha256 or fixed:[r:]<algo>", s)
	}
	algo, err := nixhash.ParseAlgo(rest)
	if err != nil {
		return 0, 0, fmt.Errorf("content-address method %q: %w", s, err)
	}
	return m, algo, nil
}

func (c *conn) addToStore() error {
	if c.minor() < 25 {
		return errFatal{fmt.Errorf("AddToStore of protocol 1.%d (before 1.25) is not supported", c.minor())}
	}
	name := c.r.Path("name")
	method := c.r.String("content-address method")
	refs := c.r.Paths("references")
	c.r.Bool("repair")
	if err := c.args(); err != nil {
		return err
	}
	c.start()
	framed := c.r.Framed()
	info, err := c.addCA(name, method, refs, framed)
	if derr := framed.Drain(); derr != nil {
		return errFatal{derr}
	}
	if err != nil {
		return err
	}
	pi, err := wireInfo(info)
	if err != nil {
		return err
	}
	c.stop(nil)
	c.w.WritePathInfo(pi, true)
	return nil
}

// addCA adds a content-addressed path whose store path the daemon
// computes, so any client may add it.
func (c *conn) addCA(name, method string, refStrings []string, r io.Reader) (*storev1.PathInfo, error) {
	m, algo, err := parseCAMethod(method)
	if err != nil {
		return nil, err
	}
	refs, err := parsePaths(refStrings)
	if err != nil {
		return nil, err
	}
	for _, ref := range refs {
		if info, err := c.lookup(ref); err != nil {
			return nil, err
		} else if info == nil {
			return nil, fmt.Errorf("cannot add '%s': its reference '%s' is not valid", name, ref)
		}
	}
	st := c.srv.Store
	imp := importer.Store{Blobs: st.Blobs, Dirs: st.Dirs, PathInfo: st.PathInfos, Limits: st.Limits}
	sp, info, err := imp.AddStream(c.ctx, r, name, m, algo, refs)
	if err != nil {
		return nil, err
	}
	if err := c.tempRoot(sp); err != nil {
		return nil, err
	}
	return info, nil
}

func (c *conn) addTextToStore() error {
	name := c.r.Path("name")
	text := c.r.String("text")
	refs := c.r.Paths("references")
	if err := c.args(); err != nil {
		return err
	}
	c.start()
	info, err := c.addCA(name, "text:sha256", refs, strings.NewReader(text))
	if err != nil {
		return err
	}
	c.stop(nil)
	c.w.String(storepath.StoreDir + "/" + string(castore.NodeName(info.GetNode())))
	return nil
}

func (c *conn) addSignatures() error {
	s := c.r.Path("path")
	sigStrings := c.r.Strings("signatures", 4096)
	if err := c.args(); err != nil {
		return err
	}
	c.start()
	if !c.trusted {
		return errors.New("you are not privileged to add signatures")
	}
	sp, err := parsePath(s)
	if err != nil {
		return err
	}
	info, err := c.require(sp)
	if err != nil {
		return err
	}
	var sigs []narinfo.Signature
	for _, str := range sigStrings {
		sig, err := narinfo.ParseSignature(str)
		if err != nil {
			return fmt.Errorf("add signatures to %s: %w", sp, err)
		}
		sigs = append(sigs, sig)
	}
	if err := c.mergeSignatures(info, sigs); err != nil {
		return err
	}
	c.stop(nil)
	c.w.Uint64(1)
	return nil
}

func (c *conn) narFromPath() error {
	sp, err := c.pathArg("path")
	if err != nil {
		return err
	}
	info, err := c.require(sp)
	if err != nil {
		return err
	}
	c.stop(nil)
	st := c.srv.Store
	if err := narcastore.Render(c.ctx, c.w, castore.RenameNode(info.GetNode(), nil), st.Blobs, st.Dirs); err != nil {
		return errAbort{fmt.Errorf("NAR of %s: %w", sp, err)}
	}
	return nil
}

func (c *conn) ensurePath() error {
	sp, err := c.pathArg("path")
	if err != nil {
		return err
	}
	info, err := c.substitute(sp)
	if err != nil {
		return err
	}
	if info == nil {
		return fmt.Errorf("path '%s' is not valid and no substituter has it", sp)
	}
	c.stop(nil)
	c.w.Uint64(1)
	return nil
}
