package eval

import (
	"path/filepath"
	"strings"

	"github.com/tvix-go/tvix/eval/syntax"
)

func (ev *Evaluator) resolveImport(p string) string {
	if ft, err := ev.opts.IO.FileType(p); err == nil {
		if ft == FileSymlink {
			if r, err := filepath.EvalSymlinks(p); err == nil {
				if ft2, err := ev.opts.IO.FileType(r); err == nil && ft2 == FileDirectory {
					return p + "/default.nix"
				}
			}
		}
		if ft == FileDirectory {
			return p + "/default.nix"
		}
	}
	return p
}

func (ev *Evaluator) importPath(p string, pos syntax.Pos) Value {
	p = ev.resolveImport(p)
	if v, ok := ev.importCache[p]; ok {
		return v
	}
	text, err := ev.opts.IO.ReadFile(p)
	if rest, ok := strings.CutPrefix(p, corepkgsPrefix); ok && corepkgs[rest] != "" {
		text, err = []byte(corepkgs[rest]), nil
	}
	if err != nil {
		ev.throwAt(pos, "getting status of '%s': %s", p, ioErrText(err))
	}
	t := newThunk(func(ev *Evaluator, _ *Env) Value {
		return ev.evalSource(syntax.NewSource(p, text), filepath.Dir(p), nil)
	}, nil)
	ev.importCache[p] = t
	return t
}
