package glue

import (
	"path/filepath"
	"sort"
	"strings"

	"github.com/tvix-go/tvix/eval"
	"github.com/tvix-go/tvix/nix/nixhash"
	"github.com/tvix-go/tvix/nix/storepath"
)

func sortStrings(s []string) { sort.Strings(s) }

// toFile is builtins.toFile: a text file that may refer to store paths but,
// as in C++ Nix, not to derivations or their outputs.
func (g *Glue) toFile(ev *eval.Evaluator, args []eval.Value) eval.Value {
	name := noCtx(ev, args[0])
	contents := ev.ForceString(args[1])
	var refs []storepath.StorePath
	var refStrs []string
	for _, c := range contents.Ctx() {
		if !strings.HasPrefix(c, "/") {
			ev.Throwf("in 'toFile': the file named '%s' must not contain a reference to a derivation but contains (%s)", name, c)
		}
		sp, err := storepath.Parse(c)
		if err != nil {
			ev.Throwf("in 'toFile': %v", err)
		}
		refs = append(refs, sp)
		refStrs = append(refStrs, c)
	}
	sp, err := g.store.AddText(g.ctx, name, []byte(contents.S), refs)
	if err != nil {
		ev.Throwf("in 'toFile': %v", err)
	}
	p := sp.String()
	g.mu.Lock()
	g.refs[p] = refStrs
	g.mu.Unlock()
	return eval.StrCtx(p, eval.Context{p})
}

// coerceToPath is C++ Nix's coerceToPath: a string (or path) that must be
// absolute; its context is returned too.
func coerceToPath(ev *eval.Evaluator, v eval.Value) (string, eval.Context) {
	s := ev.CoerceToStringMore(v, false)
	if !strings.HasPrefix(s.S, "/") {
		ev.Throwf("string '%s' doesn't represent an absolute path", s.S)
	}
	return s.S, s.Ctx()
}

// addPath imports a path as builtins.path and filterSource do.
func (g *Glue) addPath(ev *eval.Evaluator, name, path string, filterFn eval.Value, recursive bool, expected *nixhash.Hash) eval.Value {
	var filter Filter
	if filterFn != nil {
		filter = func(p, typ string) (bool, error) {
			return ev.ForceBool(ev.CallN(filterFn, []eval.Value{eval.Str(p), eval.Str(typ)})), nil
		}
	}
	if expected != nil {
		want, err := storepath.MakeFixedOutput(name, recursive, expected.Algo.String(), expected.Digest, nil)
		if err != nil {
			ev.Throwf("%v", err)
		}
		sp, err := g.store.AddPath(g.ctx, name, path, recursive, filter)
		if err != nil {
			ev.Throwf("%v", err)
		}
		if sp != want {
			ev.Throwf("store path mismatch in (possibly filtered) path added from '%s'", path)
		}
		return eval.StrCtx(sp.String(), eval.Context{sp.String()})
	}
	sp, err := g.store.AddPath(g.ctx, name, path, recursive, filter)
	if err != nil {
		ev.Throwf("%v", err)
	}
	return eval.StrCtx(sp.String(), eval.Context{sp.String()})
}

func (g *Glue) filterSource(ev *eval.Evaluator, args []eval.Value) eval.Value {
	path, _ := coerceToPath(ev, args[1])
	f := ev.Force(args[0])
	switch f.(type) {
	case *eval.Lambda, *eval.PrimOp, *eval.PrimOpApp:
	default:
		ev.Throwf("first argument in call to 'filterSource' is not a function but %s", eval.TypeName(f))
	}
	return g.addPath(ev, filepath.Base(path), path, f, true, nil)
}

func (g *Glue) path(ev *eval.Evaluator, args []eval.Value) eval.Value {
	attrs := ev.ForceAttrs(args[0])
	var path, name string
	var filter eval.Value
	recursive := true
	var expected *nixhash.Hash
	for _, a := range attrs.All() {
		switch a.Name() {
		case "path":
			path, _ = coerceToPath(ev, a.Val)
		case "name":
			name = noCtx(ev, a.Val)
		case "filter":
			filter = ev.Force(a.Val)
		case "recursive":
			recursive = ev.ForceBool(a.Val)
		case "sha256":
			s := noCtx(ev, a.Val)
			h := parseOutputHash(ev, s, ptr("sha256"))
			expected = &h
		default:
			ev.Throwf("unsupported argument '%s' to 'addPath'", a.Name())
		}
	}
	if path == "" {
		ev.Throwf("'path' required")
	}
	if name == "" {
		name = filepath.Base(path)
	}
	return g.addPath(ev, name, path, filter, recursive, expected)
}

func ptr[T any](v T) *T { return &v }

// storePath is builtins.storePath: a path in the store, used with the
// store path as its context.
func (g *Glue) storePath(ev *eval.Evaluator, args []eval.Value) eval.Value {
	path, _ := coerceToPath(ev, args[0])
	if _, err := storepath.Parse(path); err != nil {
		// Resolve symlinks unless the path is itself directly in the store.
		if r, err := filepath.EvalSymlinks(path); err == nil {
			path = r
		} else {
			path = filepath.Clean(path)
		}
	}
	sp, _, err := storepath.ParsePrefix(path)
	if err != nil {
		ev.Throwf("path '%s' is not in the Nix store", path)
	}
	return eval.StrCtx(path, eval.Context{sp.String()})
}

// copyToStore backs "${./path}": the path added recursively under its
// base name.
func (g *Glue) copyToStore(ev *eval.Evaluator, path string) (string, error) {
	sp, err := g.store.AddPath(g.ctx, filepath.Base(path), path, true, nil)
	if err != nil {
		return "", err
	}
	return sp.String(), nil
}
