package eval

import (
	"path/filepath"
	"strings"
)

// registerPaths adds the builtins that read files, directories and the
// environment, or take paths apart.
func registerPaths(reg registerFunc) {
	reg("import", 1, func(ev *Evaluator, a []Value) Value {
		return ev.importPath(ev.coerceToPath(a[0]), true)
	})
	reg("scopedImport", 2, func(ev *Evaluator, a []Value) Value {
		scope := ev.forceAttrs(a[0])
		p := ev.resolveImport(ev.coerceToPath(a[1]))
		text, err := ev.opts.IO.ReadFile(p)
		if err != nil {
			ev.throwNoPos("getting status of '%s': %s", p, ioErrText(err))
		}
		return ev.evalSource(newSource(p, string(text)), filepath.Dir(p), scope)
	})
	reg("baseNameOf", 1, func(ev *Evaluator, a []Value) Value {
		s := ev.coerceToString(a[0], ev.curPos, false, false)
		return StrCtx(baseNameOf(s.S), s.Ctx())
	})
	reg("dirOf", 1, func(ev *Evaluator, a []Value) Value {
		v := ev.Force(a[0])
		if p, ok := v.(Path); ok {
			return Path(dirOf(string(p)))
		}
		s := ev.coerceToString(v, ev.curPos, false, false)
		return StrCtx(dirOf(s.S), s.Ctx())
	})
	reg("toPath", 1, func(ev *Evaluator, a []Value) Value { return Str(ev.coerceToPath(a[0])) })
	reg("pathExists", 1, func(ev *Evaluator, a []Value) Value {
		raw := ev.coerceToString(a[0], ev.curPos, false, false).S
		p := ev.coerceToPath(a[0])
		ok, err := ev.opts.IO.PathExists(p)
		if err != nil {
			ev.Throwf("checking whether '%s' exists: %v", p, err)
		}
		if ok && (strings.HasSuffix(raw, "/") || strings.HasSuffix(raw, "/.")) {
			// a trailing slash asks for a directory
			ft, err := ev.opts.IO.FileType(p)
			if err == nil && ft == FileSymlink {
				if r, err := filepath.EvalSymlinks(p); err == nil {
					// an unreadable target is not a directory
					ft, _ = ev.opts.IO.FileType(r)
				}
			}
			return Bool(err == nil && ft == FileDirectory)
		}
		return Bool(ok)
	})
	reg("readFile", 1, func(ev *Evaluator, a []Value) Value {
		p := ev.coerceToPath(a[0])
		b, err := ev.opts.IO.ReadFile(p)
		if err != nil {
			ev.throwNoPos("opening file '%s': %s", p, ioErrText(err))
		}
		return Str(string(b))
	})
	reg("readDir", 1, func(ev *Evaluator, a []Value) Value {
		p := ev.coerceToPath(a[0])
		es, err := ev.opts.IO.ReadDir(p)
		if err != nil {
			ev.throwNoPos("opening directory '%s': %s", p, ioErrText(err))
		}
		out := make([]Attr, len(es))
		for i, e := range es {
			t := e.Type
			if t == FileUnknown {
				if ft, err := ev.opts.IO.FileType(p + "/" + e.Name); err == nil {
					t = ft
				}
			}
			out[i] = MkAttr(e.Name, Str(t.String()))
		}
		return NewAttrs(out)
	})
	reg("readFileType", 1, func(ev *Evaluator, a []Value) Value {
		p := ev.coerceToPath(a[0])
		t, err := ev.opts.IO.FileType(p)
		if err != nil {
			ev.throwNoPos("getting status of '%s': %s", p, ioErrText(err))
		}
		return Str(t.String())
	})
	reg("getEnv", 1, func(ev *Evaluator, a []Value) Value { return Str(ev.getenv(ev.str(a[0]))) })
	reg("findFile", 2, func(ev *Evaluator, a []Value) Value {
		l := ev.ForceList(a[0])
		name := ev.str(a[1])
		for _, it := range l.Items {
			as := ev.forceAttrs(it)
			pv, ok := as.Get("path")
			if !ok {
				ev.Throwf("attribute 'path' missing")
			}
			prefix := ""
			if x, ok := as.Get("prefix"); ok {
				prefix = ev.str(x)
			}
			base := ev.coerceToString(pv, ev.curPos, false, false).S
			if strings.Contains(base, "://") {
				continue
			}
			var cand string
			switch {
			case prefix == "":
				cand = base + "/" + name
			case name == prefix:
				cand = base
			case strings.HasPrefix(name, prefix+"/"):
				cand = base + name[len(prefix):]
			default:
				continue
			}
			if !filepath.IsAbs(cand) {
				if abs, err := filepath.Abs(cand); err == nil {
					cand = abs
				}
			}
			if ok, _ := ev.opts.IO.PathExists(cand); ok {
				return Path(canonPath(cand))
			}
		}
		if rest, ok := strings.CutPrefix(name, "nix/"); ok {
			if _, ok := corepkgs[rest]; ok {
				return Path(corepkgsPrefix + rest)
			}
		}
		ev.ThrowKind(ErrThrow, "file '%s' was not found in the Nix search path (add it using $NIX_PATH or -I)", name)
		return nil
	})
}

func baseNameOf(p string) string {
	if p == "" {
		return ""
	}
	last := len(p) - 1
	if p[last] == '/' && last > 0 {
		last--
	}
	pos := strings.LastIndexByte(p[:last+1], '/')
	return p[pos+1 : last+1]
}

func dirOf(p string) string {
	pos := strings.LastIndexByte(p, '/')
	if pos < 0 {
		return "."
	}
	if pos == 0 {
		return "/"
	}
	return p[:pos]
}
