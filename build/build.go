// Package build runs builds described by Tvix's BuildRequest (package
// buildv1): inputs as castore nodes, a command, outputs read back as
// castore nodes with the reference needles found in each. Backends (the
// local sandbox in build/sandbox) implement Builder; the gRPC service in
// this package serves any Builder to other processes.
package build

import (
	"context"
	"fmt"
	"io"
	"iter"
	"path"
	"strings"

	"github.com/tvix-go/tvix/build/buildv1"
	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/nix/nixbase32"
	"github.com/tvix-go/tvix/nix/storepath"
)

// Builder runs one build. The builder's stdout and stderr go to log as
// they are written. A build whose command fails returns a *Failure.
type Builder interface {
	Build(ctx context.Context, req *buildv1.BuildRequest, log io.Writer) (*buildv1.Build, error)
}

// Failure is a build that ran and did not succeed; nothing it wrote is
// kept.
type Failure struct {
	Message string
	// ExitCode is the builder's exit status, -1 when it did not exit.
	ExitCode int
	TimedOut bool
}

func (f *Failure) Error() string { return f.Message }

// Validate checks a request before anything is set up for it, so a bad
// one fails with an error naming the field instead of half-way through a
// build: inputs named by store path basenames, sorted and unique; paths
// relative, clean and inside the sandbox; outputs below inputs_dir;
// environment sorted with unique keys.
func Validate(req *buildv1.BuildRequest) error {
	if len(req.GetCommandArgs()) == 0 {
		return fmt.Errorf("build request: no command_args")
	}
	inputsDir := req.GetInputsDir()
	if err := relPath(inputsDir); err != nil {
		return fmt.Errorf("build request: inputs_dir: %w", err)
	}
	var prev string
	for i, n := range req.GetInputs() {
		if err := castore.ValidateNode(n); err != nil {
			return fmt.Errorf("build request: input %d: %w", i, err)
		}
		name := string(castore.NodeName(n))
		if _, err := storepath.FromBasename(name); err != nil {
			return fmt.Errorf("build request: input %q is not named by a store path basename: %w", name, err)
		}
		if i > 0 && name <= prev {
			if name == prev {
				return fmt.Errorf("build request: input %q given twice", name)
			}
			return fmt.Errorf("build request: inputs not sorted: %q after %q", name, prev)
		}
		prev = name
	}
	if err := relPath(req.GetWorkingDir()); err != nil {
		return fmt.Errorf("build request: working_dir: %w", err)
	}
	for _, p := range req.GetScratchPaths() {
		if err := relPath(p); err != nil {
			return fmt.Errorf("build request: scratch path: %w", err)
		}
	}
	if len(req.GetOutputs()) == 0 {
		return fmt.Errorf("build request: no outputs")
	}
	seen := map[string]bool{}
	for _, o := range req.GetOutputs() {
		if err := relPath(o); err != nil {
			return fmt.Errorf("build request: output: %w", err)
		}
		dir, base := path.Split(o)
		if strings.TrimSuffix(dir, "/") != inputsDir {
			return fmt.Errorf("build request: output %q is not directly below inputs_dir %q", o, inputsDir)
		}
		if _, err := storepath.FromBasename(base); err != nil {
			return fmt.Errorf("build request: output %q is not a store path: %w", o, err)
		}
		if seen[o] {
			return fmt.Errorf("build request: output %q given twice", o)
		}
		seen[o] = true
	}
	for i, e := range req.GetEnvironmentVars() {
		if e.GetKey() == "" || strings.ContainsAny(e.GetKey(), "=\x00") {
			return fmt.Errorf("build request: environment variable %q: empty, or contains = or NUL", e.GetKey())
		}
		if i > 0 && e.GetKey() <= req.GetEnvironmentVars()[i-1].GetKey() {
			return fmt.Errorf("build request: environment variables not sorted by key, or %q given twice", e.GetKey())
		}
	}
	for _, f := range req.GetAdditionalFiles() {
		if err := relPath(f.GetPath()); err != nil {
			return fmt.Errorf("build request: additional file: %w", err)
		}
	}
	for _, n := range req.GetRefscanNeedles() {
		if len(n) != encodedDigestSize {
			return fmt.Errorf("build request: refscan needle %q: want a %d-character store path hash", n, encodedDigestSize)
		}
	}
	return nil
}

// relPath accepts a clean path relative to the sandbox root.
func relPath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("empty path")
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("%q is absolute, want a path relative to the sandbox root", p)
	case path.Clean(p) != p || p == ".." || strings.HasPrefix(p, "../"):
		return fmt.Errorf("%q is not a clean path inside the sandbox", p)
	case strings.ContainsRune(p, 0):
		return fmt.Errorf("%q contains NUL", p)
	}
	return nil
}

// encodedDigestSize is the length of a store path's nixbase32 hash part.
const encodedDigestSize = 32

// Limit runs at most n builds of b at once; more wait.
func Limit(b Builder, n int) Builder { return &limited{b: b, slots: make(chan struct{}, n)} }

type limited struct {
	b     Builder
	slots chan struct{}
}

func (l *limited) Build(ctx context.Context, req *buildv1.BuildRequest, log io.Writer) (*buildv1.Build, error) {
	select {
	case l.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-l.slots }()
	return l.b.Build(ctx, req, log)
}

// InputRoots serves a request's inputs, and nothing else, as the root
// nodes of a castore/fs tree: what a build's /nix/store is made of.
type InputRoots []*castorev1.Node

func (r InputRoots) Get(_ context.Context, name string) (*castorev1.Node, error) {
	for _, n := range r {
		if string(castore.NodeName(n)) == name {
			return n, nil
		}
	}
	return nil, fmt.Errorf("input %q: %w", name, castore.ErrNotFound)
}

func (r InputRoots) List(context.Context) iter.Seq2[*castorev1.Node, error] {
	return func(yield func(*castorev1.Node, error) bool) {
		for _, n := range r {
			if !yield(n, nil) {
				return
			}
		}
	}
}

// Needles are a request's refscan needles as store paths (digest only),
// for a refscan.Scanner.
func Needles(req *buildv1.BuildRequest) ([]storepath.StorePath, error) {
	var out []storepath.StorePath
	for _, n := range req.GetRefscanNeedles() {
		d, err := nixbase32.DecodeString(n)
		if err != nil || len(d) != storepath.DigestSize {
			return nil, fmt.Errorf("build request: refscan needle %q: not a store path hash", n)
		}
		var sp storepath.StorePath
		copy(sp.Digest[:], d)
		sp.Name = "needle"
		out = append(out, sp)
	}
	return out, nil
}

// NeedleIndexes turns the needles a scanner found into indexes into
// needles, as Build.outputs_needles holds them.
func NeedleIndexes(needles, found []storepath.StorePath) []uint64 {
	var idx []uint64
	for _, f := range found {
		for i, n := range needles {
			if n.Digest == f.Digest {
				idx = append(idx, uint64(i))
			}
		}
	}
	return idx
}

// CheckInputs makes sure each input's root is in the store (the blob of a
// file, the directory of a tree), so a request naming contents nobody has
// fails at once, naming the input, instead of as an I/O error inside the
// build. Contents deeper in a tree are read lazily and checked then.
func CheckInputs(ctx context.Context, blobs castore.BlobService, dirs castore.DirectoryService, req *buildv1.BuildRequest) error {
	for _, n := range req.GetInputs() {
		name := string(castore.NodeName(n))
		switch {
		case n.GetFile() != nil:
			d, err := castore.DigestFromBytes(n.GetFile().GetDigest())
			if err != nil {
				return fmt.Errorf("build request: input %s: %w", name, err)
			}
			ok, err := blobs.Has(ctx, d)
			if err != nil {
				return fmt.Errorf("build request: input %s: %w", name, err)
			}
			if !ok {
				return fmt.Errorf("build request: input %s: blob %s is not in the store", name, d)
			}
		case n.GetDirectory() != nil:
			d, err := castore.DigestFromBytes(n.GetDirectory().GetDigest())
			if err != nil {
				return fmt.Errorf("build request: input %s: %w", name, err)
			}
			if _, err := dirs.Get(ctx, d); err != nil {
				return fmt.Errorf("build request: input %s: directory %s: %w", name, d, err)
			}
		}
	}
	return nil
}
