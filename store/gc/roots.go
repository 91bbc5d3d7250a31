// Package gc is garbage collection of a tvix store: the roots (temporary
// roots of sessions, indirect roots in a gcroots directory, roots from a
// file), the choice of what paths go (unreachable from the roots, paths
// given by name, least recently used closures beyond a size), and the
// mark of everything the remaining paths reach, which the castore
// services then sweep (castore.Collectable). See docs/gc.md.
package gc

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/tvix-go/tvix/nix/nixbase32"
	"github.com/tvix-go/tvix/nix/storepath"
)

// Roots are what keeps store paths alive besides the paths themselves:
// the temporary roots of sessions in this process and the symlinks in a
// gcroots directory (like /nix/var/nix/gcroots).
type Roots struct {
	// Dir is the gcroots directory; "" has none.
	Dir string

	mu       sync.Mutex
	sessions map[*Session]struct{}
}

// NewRoots keeps indirect roots in dir ("" for none; created when the
// first root is added).
func NewRoots(dir string) *Roots { return &Roots{Dir: dir, sessions: map[*Session]struct{}{}} }

// Session holds temporary roots: paths being built, imported or handed to
// a client, alive until Release. Everything a collection finds touched
// after the oldest open session began is kept too (the epoch, see
// Collector.Collect), so what a session uploads or deduplicates against
// survives until the session ends, even before its store path is known.
type Session struct {
	r       *Roots
	started time.Time

	mu       sync.Mutex
	paths    map[[storepath.DigestSize]byte]storepath.StorePath
	released bool
}

// NewSession starts a session; its temporary roots go with Release.
func (r *Roots) NewSession() *Session {
	s := &Session{r: r, started: time.Now(), paths: map[[storepath.DigestSize]byte]storepath.StorePath{}}
	r.mu.Lock()
	r.sessions[s] = struct{}{}
	r.mu.Unlock()
	return s
}

// AddTempRoot keeps p (and its closure) alive until the session ends.
// Adding to a released session is an error: nothing would keep p.
func (s *Session) AddTempRoot(p storepath.StorePath) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.released {
		return fmt.Errorf("add temporary root %s: session already released", p)
	}
	s.paths[p.Digest] = p
	return nil
}

// Release drops the session's temporary roots; it may be called again.
func (s *Session) Release() {
	s.mu.Lock()
	s.released = true
	s.paths = nil
	s.mu.Unlock()
	s.r.mu.Lock()
	delete(s.r.sessions, s)
	s.r.mu.Unlock()
}

// TempRoots lists the temporary roots of every open session, and when the
// oldest of them began (zero without sessions).
func (r *Roots) TempRoots() (paths []storepath.StorePath, oldest time.Time) {
	r.mu.Lock()
	sessions := make([]*Session, 0, len(r.sessions))
	for s := range r.sessions {
		sessions = append(sessions, s)
	}
	r.mu.Unlock()
	for _, s := range sessions {
		if oldest.IsZero() || s.started.Before(oldest) {
			oldest = s.started
		}
		s.mu.Lock()
		for _, p := range s.paths {
			paths = append(paths, p)
		}
		s.mu.Unlock()
	}
	return paths, oldest
}

// autoDir holds the indirect roots, as Nix's gcroots/auto.
func (r *Roots) autoDir() string { return filepath.Join(r.Dir, "auto") }

// AddIndirectRoot records link (a symlink outside the store, like a
// nix-build's ./result) as a root: its target stays alive for as long as
// the link resolves to a store path. The record is a symlink to link in
// Dir/auto named by link's hash, as Nix makes them.
func (r *Roots) AddIndirectRoot(link string) error {
	if r.Dir == "" {
		return errors.New("add indirect root: no gcroots directory configured")
	}
	abs, err := filepath.Abs(link)
	if err != nil {
		return fmt.Errorf("add indirect root %s: %w", link, err)
	}
	if err := os.MkdirAll(r.autoDir(), 0o755); err != nil {
		return fmt.Errorf("add indirect root %s: %w", link, err)
	}
	sum := sha256.Sum256([]byte(abs))
	name := filepath.Join(r.autoDir(), nixbase32.EncodeToString(sum[:20]))
	// A new name then rename: a crash leaves the old record or the new
	// one, never none.
	tmp := name + ".tmp"
	_ = os.Remove(tmp)
	if err := os.Symlink(abs, tmp); err != nil {
		return fmt.Errorf("add indirect root %s: %w", link, err)
	}
	if err := os.Rename(tmp, name); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("add indirect root %s: %w", link, err)
	}
	return nil
}

// FindRoots lists the roots in Dir: each symlink into the store, keyed by
// the symlink, and each indirect root whose link still resolves into the
// store, keyed by that link. Indirect records whose link is gone are
// removed, as Nix does.
func (r *Roots) FindRoots(ctx context.Context) (map[string]storepath.StorePath, error) {
	roots := map[string]storepath.StorePath{}
	if r.Dir == "" {
		return roots, nil
	}
	if err := findLinkRoots(ctx, r.Dir, r.autoDir(), roots); err != nil {
		return nil, err
	}
	return roots, nil
}

// findLinkRoots walks dir for symlinks to store paths (or to symlinks to
// store paths); stale ones inside pruneIn are deleted.
func findLinkRoots(ctx context.Context, dir, pruneIn string, roots map[string]storepath.StorePath) error {
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path == dir {
				return filepath.SkipAll
			}
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if e.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		target, sp, inStore, err := readStoreLink(path)
		if err != nil || inStore {
			if inStore {
				roots[path] = sp
			}
			return err
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(path), target)
		}
		fi, err := os.Lstat(target)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if pruneIn != "" && strings.HasPrefix(path, pruneIn+string(filepath.Separator)) {
				_ = os.Remove(path)
			}
			return nil
		case err != nil:
			return err
		case fi.Mode()&fs.ModeSymlink == 0:
			return nil
		}
		// An indirect root: a link to the user's link (./result).
		if _, sp, inStore, err := readStoreLink(target); err != nil || inStore {
			if inStore {
				roots[target] = sp
			}
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("find roots in %s: %w", dir, err)
	}
	return nil
}

// readStoreLink reads a symlink and says whether it points into the store
// (at a store path or below one).
func readStoreLink(path string) (target string, sp storepath.StorePath, inStore bool, err error) {
	target, err = os.Readlink(path)
	if err != nil {
		return "", sp, false, err
	}
	sp, _, perr := storepath.ParsePrefix(target)
	return target, sp, perr == nil, nil
}

// ReadRoots reads roots from a file (store paths, one a line; blank lines
// and # comments skipped) or a directory of symlinks (as FindRoots).
func ReadRoots(ctx context.Context, name string) ([]storepath.StorePath, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return nil, fmt.Errorf("read roots: %w", err)
	}
	if fi.IsDir() {
		m := map[string]storepath.StorePath{}
		if err := findLinkRoots(ctx, name, "", m); err != nil {
			return nil, err
		}
		out := make([]storepath.StorePath, 0, len(m))
		for _, p := range m {
			out = append(out, p)
		}
		return out, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("read roots: %w", err)
	}
	defer f.Close()
	var out []storepath.StorePath
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sp, _, err := storepath.ParsePrefix(line)
		if err != nil {
			return nil, fmt.Errorf("read roots: %s line %d: %w", name, n, err)
		}
		out = append(out, sp)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read roots: %s: %w", name, err)
	}
	return out, nil
}
