package eval

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"sort"

	"github.com/tvix-go/tvix/eval/syntax"
	"github.com/tvix-go/tvix/nix/nar"
	"github.com/tvix-go/tvix/nix/storepath"
)

// copyPathToStore is the store path of p used as a string: copied (or
// its path computed) once per evaluator, as Nix copies each path once.
func (ev *Evaluator) copyPathToStore(p string, pos syntax.Pos) string {
	if sp, ok := ev.storeCache[p]; ok {
		return sp
	}
	var sp string
	var err error
	if ev.opts.CopyToStore != nil {
		sp, err = ev.opts.CopyToStore(ev, p)
	} else {
		sp, err = ev.computeStorePath(p)
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			ev.throwAt(pos, "getting status of '%s': No such file or directory", p)
		}
		ev.throwAt(pos, "copying path '%s' to the store: %v", p, err)
	}
	ev.storeCache[p] = sp
	return sp
}

// computeStorePath is the default for paths used as strings: the path
// `nix-store --add` would give (NAR, sha256, recursive), without a store.
func (ev *Evaluator) computeStorePath(p string) (string, error) {
	h := sha256.New()
	w := nar.NewWriter(h)
	if err := ev.dumpNAR(w, p); err != nil {
		return "", err
	}
	if err := w.Close(); err != nil {
		return "", err
	}
	sp, err := storepath.MakeSource(baseNameOf(p), h.Sum(nil), nil, false)
	if err != nil {
		return "", err
	}
	return sp.String(), nil
}

// dumpNAR serialises p as read through the evaluator's IO, which need not
// be the local file system (nar.DumpPath reads only that).
func (ev *Evaluator) dumpNAR(w *nar.Writer, p string) error {
	ft, err := ev.opts.IO.FileType(p)
	if err != nil {
		return err
	}
	switch ft {
	case FileRegular:
		exec := false
		if x, ok := ev.opts.IO.(ExecutableIO); ok {
			if exec, err = x.IsExecutable(p); err != nil {
				return err
			}
		}
		b, err := ev.opts.IO.ReadFile(p)
		if err != nil {
			return err
		}
		return w.File(exec, uint64(len(b)), bytes.NewReader(b))
	case FileSymlink:
		rl, ok := ev.opts.IO.(ReadlinkIO)
		if !ok {
			return fmt.Errorf("file '%s' is a symlink and the evaluator's IO cannot read links", p)
		}
		t, err := rl.Readlink(p)
		if err != nil {
			return err
		}
		return w.Symlink([]byte(t))
	case FileDirectory:
		es, err := ev.opts.IO.ReadDir(p)
		if err != nil {
			return err
		}
		// NAR wants entries in byte order; an IO need not list them so.
		sort.Slice(es, func(i, j int) bool { return es[i].Name < es[j].Name })
		if err := w.Directory(); err != nil {
			return err
		}
		for _, e := range es {
			if err := w.Entry([]byte(e.Name)); err != nil {
				return err
			}
			if err := ev.dumpNAR(w, p+"/"+e.Name); err != nil {
				return err
			}
		}
		return w.Leave()
	}
	return fmt.Errorf("file '%s' has an unsupported type", p)
}
