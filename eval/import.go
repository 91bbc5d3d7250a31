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

// importPath is the value of the file p, evaluated once. fromImport: an
// error evaluating it gets C++ Nix's trace line naming the file (not the
// file nix-instantiate was given).
func (ev *Evaluator) importPath(p string, fromImport bool) Value {
	p = ev.resolveImport(p)
	if v, ok := ev.importCache[p]; ok {
		return v
	}
	text, err := ev.opts.IO.ReadFile(p)
	if rest, ok := strings.CutPrefix(p, corepkgsPrefix); ok && corepkgs[rest] != "" {
		text, err = []byte(corepkgs[rest]), nil
	}
	if err != nil {
		// without a position, as C++ Nix 2.8 reports it
		ev.throwNoPos("getting status of '%s': %s", p, ioErrText(err))
	}
	t := newThunk(func(ev *Evaluator, _ *Env) Value {
		if fromImport {
			defer ev.traceImport(ev.mark(), p)
		}
		return ev.evalSource(syntax.NewSource(p, text), filepath.Dir(p), nil)
	}, nil)
	ev.importCache[p] = t
	return t
}

// traceImport, deferred while an imported file is evaluated, adds Nix's
// "while evaluating the file" to an error passing through, after the
// calls made inside the file (as addErrorContext orders them).
func (ev *Evaluator) traceImport(m stackMark, p string) {
	r := recover()
	if r == nil {
		return
	}
	if e, ok := r.(*Error); ok {
		ev.traceThen(e, m, TraceFrame{Msg: "while evaluating the file '" + p + "':", nixTrace: true})
	}
	panic(r)
}
