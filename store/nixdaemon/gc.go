package nixdaemon

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"

	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/nix/workerproto"
	"github.com/tvix-go/tvix/store/closure"
)

var errNoGC = errors.New("this tvix daemon keeps no garbage-collector roots (it was started without gc)")

// tempRoot holds sp for the rest of the connection, so a collection
// running meanwhile keeps what this client just added or asked for.
func (c *conn) tempRoot(sp storepath.StorePath) error {
	roots := c.srv.Store.Roots
	if roots == nil {
		return nil
	}
	c.rootsMu.Lock()
	defer c.rootsMu.Unlock()
	if c.roots == nil {
		c.roots = roots.Session()
	}
	if err := c.roots.AddTempRoot(c.ctx, sp); err != nil {
		return fmt.Errorf("add temporary root %s: %w", sp, err)
	}
	return nil
}

func (c *conn) releaseRoots() {
	c.rootsMu.Lock()
	defer c.rootsMu.Unlock()
	if c.roots != nil {
		if err := c.roots.Close(); err != nil {
			c.log.Warn("release temporary roots", "err", err)
		}
		c.roots = nil
	}
}

func (c *conn) addTempRoot() error {
	sp, err := c.pathArg("path")
	if err != nil {
		return err
	}
	if err := c.tempRoot(sp); err != nil {
		return err
	}
	c.stop(nil)
	c.w.Uint64(1)
	return nil
}

func (c *conn) addIndirectRoot() error {
	link := c.r.Path("link")
	if err := c.args(); err != nil {
		return err
	}
	c.start()
	roots := c.srv.Store.Roots
	if roots == nil {
		return errNoGC
	}
	if !filepath.IsAbs(link) {
		return fmt.Errorf("indirect root %q is not an absolute path", link)
	}
	if err := roots.AddIndirectRoot(c.ctx, filepath.Clean(link)); err != nil {
		return err
	}
	c.stop(nil)
	c.w.Uint64(1)
	return nil
}

func (c *conn) syncWithGC() error {
	c.start()
	c.stop(nil)
	c.w.Uint64(1)
	return nil
}

func (c *conn) findRoots() error {
	c.start()
	roots := c.srv.Store.Roots
	if roots == nil {
		return errNoGC
	}
	found, err := roots.FindRoots(c.ctx)
	if err != nil {
		return err
	}
	links := make([]string, 0, len(found))
	for l := range found {
		links = append(links, l)
	}
	sort.Strings(links)
	c.stop(nil)
	c.w.Uint64(uint64(len(links)))
	for _, l := range links {
		link := l
		if !c.trusted {
			// As Nix's findRoots(censor): others' roots are not theirs to see.
			link = "{censored}"
		}
		c.w.String(link)
		c.w.String(found[l].String())
	}
	return nil
}

func (c *conn) collectGarbage() error {
	action := c.r.Uint64("action")
	ss := c.r.Paths("paths to delete")
	ignoreLiveness := c.r.Bool("ignore liveness")
	maxFreed := c.r.Uint64("max freed")
	c.r.Uint64("obsolete")
	c.r.Uint64("obsolete")
	c.r.Uint64("obsolete")
	if err := c.args(); err != nil {
		return err
	}
	c.start()
	if ignoreLiveness {
		return errors.New("you are not allowed to ignore liveness")
	}
	if action > uint64(workerproto.GCDeleteSpecific) {
		return fmt.Errorf("unknown garbage collector action %d", action)
	}
	roots := c.srv.Store.Roots
	if roots == nil {
		return errNoGC
	}
	paths, err := parsePaths(ss)
	if err != nil {
		return err
	}
	// This client's own temporary roots are released first, as Nix's
	// collector ignores the roots of the process asking.
	res, err := roots.Collect(c.ctx, GCRequest{Action: action, Paths: paths, MaxFreed: maxFreed})
	if err != nil {
		return err
	}
	c.stop(nil)
	c.w.StringSet(pathStrings(res.Paths))
	c.w.Uint64(res.BytesFreed)
	c.w.Uint64(0) // obsolete
	return nil
}

func (c *conn) optimiseStore() error {
	c.start()
	// castore stores every blob, chunk and directory once already.
	c.stop(nil)
	c.w.Uint64(1)
	return nil
}

func (c *conn) verifyStore() error {
	checkContents := c.r.Bool("check contents")
	repair := c.r.Bool("repair")
	if err := c.args(); err != nil {
		return err
	}
	c.start()
	if repair && !c.trusted {
		return errors.New("you are not privileged to repair paths")
	}
	if repair {
		return errors.New("repair is not supported: the tvix store is immutable; delete the broken path and add it again")
	}
	st := c.srv.Store
	rep, err := closure.Verify(c.ctx, closure.Store{Blobs: st.Blobs, Dirs: st.Dirs, PathInfos: st.PathInfos}, checkContents, func(msg string) {
		c.logLine(workerproto.LvlError, "error: "+msg)
	})
	if err != nil {
		return err
	}
	c.logLine(workerproto.LvlInfo, rep.String())
	c.stop(nil)
	c.w.Bool(rep.Problems > 0)
	return nil
}
