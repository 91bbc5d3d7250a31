package glue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tvix-go/tvix/build"
	"github.com/tvix-go/tvix/build/buildv1"
	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/nix/derivation"
	"github.com/tvix-go/tvix/nix/nixhash"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/narcastore"
	"github.com/tvix-go/tvix/store/pathinfo"
	"github.com/tvix-go/tvix/store/storev1"
)

// Realiser realises derivations stored in a tvix store: in dependency
// order, outputs already in the store (or substitutable through
// PathInfos) are kept, the rest are built by Builder and recorded, their
// blobs durable before the PathInfos that name them.
type Realiser struct {
	Blobs     castore.BlobService
	Dirs      castore.DirectoryService
	PathInfos pathinfo.Service
	Builder   build.Builder
	// Jobs is how many builds run at once (0: 1); Cores is
	// NIX_BUILD_CORES.
	Jobs, Cores int
	// Timeout and MaxSilentTime bound each build, as Nix's timeout and
	// max-silent-time settings (0: only the builder's own limits); a
	// build past either fails as timed out, with any builder.
	Timeout, MaxSilentTime time.Duration
	// StopAtFirstFailure stops the other builds once one fails, as Nix
	// does without keep-going (the default here keeps going: every
	// failure is reported).
	StopAtFirstFailure bool
	// NetrcFile has credentials for builtin:fetchurl downloads, as Nix's
	// netrc-file setting.
	NetrcFile string
	// Log returns where a derivation's build log goes (nil: discarded).
	Log func(drvPath string) io.Writer
	// Started and Finished, if set, are told of each build.
	Started  func(drvPath string)
	Finished func(drvPath string, err error)
	// Progress, if set, is told the counts whenever one changes, one call
	// at a time.
	Progress func(Status)

	mu     sync.Mutex
	status Status
}

// Status counts the derivations of a Realise call.
type Status struct {
	// Total derivations in the graph; Present had their outputs already.
	Total, Present, Built, Failed, Running int
}

// Remaining is how many derivations have not been dealt with yet.
func (s Status) Remaining() int { return s.Total - s.Present - s.Built - s.Failed - s.Running }

// update changes the counts and tells Progress, one call at a time and in
// order.
func (r *Realiser) update(f func(*Status)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(&r.status)
	if r.Progress != nil {
		r.Progress(r.status)
	}
}

// drvNode is one derivation of the graph being realised.
type drvNode struct {
	path string
	drv  *derivation.Derivation
	deps []*drvNode
	done chan struct{}
	err  error
}

// Realise realises the derivations at drvPaths and everything they need,
// and returns each one's output paths by output name.
func (r *Realiser) Realise(ctx context.Context, drvPaths []string) (map[string]map[string]string, error) {
	nodes := map[string]*drvNode{}
	var order []*drvNode
	var load func(p string, stack map[string]bool) (*drvNode, error)
	load = func(p string, stack map[string]bool) (*drvNode, error) {
		if n, ok := nodes[p]; ok {
			return n, nil
		}
		if stack[p] {
			return nil, fmt.Errorf("derivation %s depends on itself", p)
		}
		stack[p] = true
		defer delete(stack, p)
		d, err := r.readDerivation(ctx, p)
		if err != nil {
			return nil, err
		}
		n := &drvNode{path: p, drv: d, done: make(chan struct{})}
		inputs := make([]string, 0, len(d.InputDerivations))
		for in := range d.InputDerivations {
			inputs = append(inputs, in)
		}
		sort.Strings(inputs)
		for _, in := range inputs {
			dep, err := load(in, stack)
			if err != nil {
				return nil, err
			}
			n.deps = append(n.deps, dep)
		}
		nodes[p] = n
		order = append(order, n)
		return n, nil
	}
	for _, p := range drvPaths {
		if _, err := load(p, map[string]bool{}); err != nil {
			return nil, err
		}
	}
	r.update(func(s *Status) { *s = Status{Total: len(order)} })
	jobs := r.Jobs
	if jobs <= 0 {
		jobs = 1
	}
	sem := make(chan struct{}, jobs)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for _, n := range order {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(n.done)
			for _, dep := range n.deps {
				select {
				case <-dep.done:
				case <-ctx.Done():
					n.err = context.Cause(ctx)
					return
				}
				if dep.err != nil {
					n.err = fmt.Errorf("dependency %s failed", dep.path)
					r.update(func(s *Status) { s.Failed++ })
					return
				}
			}
			if done, err := r.present(ctx, n.drv); err != nil || done {
				n.err = err
				if done {
					r.update(func(s *Status) { s.Present++ })
				} else {
					r.update(func(s *Status) { s.Failed++ })
				}
				return
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				n.err = context.Cause(ctx)
				return
			}
			defer func() { <-sem }()
			n.err = r.build(ctx, n)
			if n.err != nil {
				var f *build.Failure
				switch {
				case !errors.As(n.err, &f):
					cancel(n.err)
				case r.StopAtFirstFailure:
					cancel(fmt.Errorf("stopped: %s failed (and keep-going is off)", n.path))
				}
			}
		}()
	}
	wg.Wait()
	out := map[string]map[string]string{}
	var errs []error
	for _, n := range order {
		if n.err != nil {
			errs = append(errs, fmt.Errorf("build of '%s' failed: %w", n.path, n.err))
			continue
		}
		outs := map[string]string{}
		for name, o := range n.drv.Outputs {
			outs[name] = o.Path
		}
		out[n.path] = outs
	}
	return out, errors.Join(errs...)
}

// readDerivation reads and parses a .drv file from the store.
func (r *Realiser) readDerivation(ctx context.Context, p string) (*derivation.Derivation, error) {
	sp, _, err := storepath.ParsePrefix(p)
	if err != nil {
		return nil, fmt.Errorf("derivation %q: %w", p, err)
	}
	info, err := r.PathInfos.Get(ctx, sp.Digest)
	if errors.Is(err, pathinfo.ErrNotFound) {
		return nil, fmt.Errorf("derivation %s is not in the store (tvix instantiate writes it there, or give the expression to build)", p)
	}
	if err != nil {
		return nil, fmt.Errorf("derivation %s: %w", p, err)
	}
	return pathinfo.ReadDerivation(ctx, r.Blobs, info)
}

// present says whether every output of d is in the store already.
func (r *Realiser) present(ctx context.Context, d *derivation.Derivation) (bool, error) {
	for name, o := range d.Outputs {
		sp, _, err := storepath.ParsePrefix(o.Path)
		if err != nil {
			return false, fmt.Errorf("output %s: %w", name, err)
		}
		if _, err := r.PathInfos.Get(ctx, sp.Digest); errors.Is(err, pathinfo.ErrNotFound) {
			return false, nil
		} else if err != nil {
			return false, err
		}
	}
	return true, nil
}

// inputNodes looks up the root nodes of a derivation's inputs: its input
// sources and the used outputs of its input derivations, with everything
// they refer to, as Nix's sandbox holds the closure of the inputs.
func (r *Realiser) inputNodes(ctx context.Context, n *drvNode) ([]*castorev1.Node, error) {
	d := n.drv
	// The graph holds the input derivations, parsed once.
	deps := make(map[string]*derivation.Derivation, len(n.deps))
	for _, dep := range n.deps {
		deps[dep.path] = dep.drv
	}
	paths := append([]string(nil), d.InputSources...)
	for in, outs := range d.InputDerivations {
		dep, ok := deps[in]
		if !ok {
			return nil, fmt.Errorf("input derivation %s is not in the graph", in)
		}
		for _, o := range outs {
			out, ok := dep.Outputs[o]
			if !ok {
				return nil, fmt.Errorf("input %s has no output %q", in, o)
			}
			paths = append(paths, out.Path)
		}
	}
	var nodes []*castorev1.Node
	seen := map[string]bool{}
	for len(paths) > 0 {
		p := paths[0]
		paths = paths[1:]
		if seen[p] {
			continue
		}
		seen[p] = true
		sp, _, err := storepath.ParsePrefix(p)
		if err != nil {
			return nil, fmt.Errorf("input %q: %w", p, err)
		}
		info, err := r.PathInfos.Get(ctx, sp.Digest)
		if err != nil {
			return nil, fmt.Errorf("input %s: %w", p, err)
		}
		nodes = append(nodes, info.GetNode())
		for _, ref := range info.GetNarinfo().GetReferenceNames() {
			paths = append(paths, storepath.StoreDir+"/"+ref)
		}
	}
	return nodes, nil
}

func (r *Realiser) build(ctx context.Context, n *drvNode) error {
	if r.Started != nil {
		r.Started(n.path)
	}
	r.update(func(s *Status) { s.Running++ })
	err := r.buildAndRecord(ctx, n)
	r.update(func(s *Status) {
		s.Running--
		if err != nil {
			s.Failed++
		} else {
			s.Built++
		}
	})
	if r.Finished != nil {
		r.Finished(n.path, err)
	}
	return err
}

// runBuilder runs one build under Timeout and MaxSilentTime: either
// cancels the build, which then fails as timed out, whatever the builder
// made of the cancellation.
func (r *Realiser) runBuilder(ctx context.Context, req *buildv1.BuildRequest, log io.Writer) (*buildv1.Build, error) {
	if r.Timeout <= 0 && r.MaxSilentTime <= 0 {
		return r.Builder.Build(ctx, req, log)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if r.Timeout > 0 {
		t := time.AfterFunc(r.Timeout, func() {
			cancel(&build.Failure{Message: fmt.Sprintf("builder timed out after %s", r.Timeout), ExitCode: -1, TimedOut: true})
		})
		defer t.Stop()
	}
	if r.MaxSilentTime > 0 {
		t := time.AfterFunc(r.MaxSilentTime, func() {
			cancel(&build.Failure{Message: fmt.Sprintf("builder produced no output for %s", r.MaxSilentTime), ExitCode: -1, TimedOut: true})
		})
		defer t.Stop()
		log = &silenceWatch{w: log, timer: t, after: r.MaxSilentTime}
	}
	res, err := r.Builder.Build(ctx, req, log)
	var f *build.Failure
	if cause := context.Cause(ctx); err != nil && errors.As(cause, &f) && f.TimedOut {
		return nil, f
	}
	return res, err
}

// silenceWatch restarts the max-silent-time timer on each write of the
// build's log.
type silenceWatch struct {
	w     io.Writer
	timer *time.Timer
	after time.Duration
}

func (s *silenceWatch) Write(p []byte) (int, error) {
	s.timer.Reset(s.after)
	return s.w.Write(p)
}

func (r *Realiser) buildAndRecord(ctx context.Context, n *drvNode) error {
	inputs, err := r.inputNodes(ctx, n)
	if err != nil {
		return err
	}
	req, err := BuildRequest(n.drv, inputs, r.Cores)
	if err != nil {
		return err
	}
	var res *buildv1.Build
	if n.drv.Builder == "builtin:fetchurl" {
		if !n.drv.IsFixedOutput() {
			return fmt.Errorf("builtin:fetchurl of %s: only fixed-output derivations may use it", n.path)
		}
		node, err := r.fetchURL(ctx, n)
		if err != nil {
			return err
		}
		res = &buildv1.Build{BuildRequest: req, Outputs: []*castorev1.Node{node}, OutputsNeedles: []*buildv1.Build_OutputNeedles{{}}}
	} else {
		var log io.Writer = io.Discard
		if r.Log != nil {
			log = r.Log(n.path)
		}
		if res, err = r.runBuilder(ctx, req, log); err != nil {
			return err
		}
	}
	if len(res.GetOutputs()) != len(req.GetOutputs()) {
		return fmt.Errorf("builder returned %d outputs for %d", len(res.GetOutputs()), len(req.GetOutputs()))
	}
	// Needles are the outputs' hash parts, then the inputs', in request
	// order (see BuildRequest).
	var needlePaths []storepath.StorePath
	for _, o := range req.GetOutputs() {
		sp, err := storepath.FromBasename(strings.TrimPrefix(o, req.GetInputsDir()+"/"))
		if err != nil {
			return err
		}
		needlePaths = append(needlePaths, sp)
	}
	for _, in := range req.GetInputs() {
		sp, err := storepath.FromBasename(string(castore.NodeName(in)))
		if err != nil {
			return err
		}
		needlePaths = append(needlePaths, sp)
	}
	drvSP, _, err := storepath.ParsePrefix(n.path)
	if err != nil {
		return err
	}
	var infos []*storev1.PathInfo
	for i, o := range req.GetOutputs() {
		sp := needlePaths[i]
		node := res.GetOutputs()[i]
		size, sum, err := narcastore.CalculateNAR(ctx, castore.RenameNode(node, nil), r.Blobs, r.Dirs)
		if err != nil {
			return fmt.Errorf("output /%s: %w", o, err)
		}
		var refs []storepath.StorePath
		for _, idx := range res.GetOutputsNeedles()[i].GetNeedles() {
			if idx >= uint64(len(needlePaths)) {
				return fmt.Errorf("builder reported needle %d of %d", idx, len(needlePaths))
			}
			refs = append(refs, needlePaths[idx])
		}
		sort.Slice(refs, func(a, b int) bool { return refs[a].Basename() < refs[b].Basename() })
		ni := &storev1.NARInfo{NarSize: size, NarSha256: sum[:],
			Deriver: &storev1.StorePath{Name: strings.TrimSuffix(drvSP.Name, ".drv"), Digest: drvSP.Digest[:]}}
		info := &storev1.PathInfo{Node: castore.RenameNode(node, []byte(sp.Basename())), Narinfo: ni}
		for _, ref := range refs {
			info.References = append(info.References, append([]byte(nil), ref.Digest[:]...))
			ni.ReferenceNames = append(ni.ReferenceNames, ref.Basename())
		}
		if n.drv.IsFixedOutput() {
			ca, err := r.checkFixed(ctx, n, node, sum)
			if err != nil {
				return err
			}
			if ni.Ca, err = pathinfo.CAToProto(ca); err != nil {
				return err
			}
		}
		infos = append(infos, info)
	}
	// Outputs may refer to each other (never in a cycle): record the
	// referenced ones first, so a reader never meets a dangling reference.
	infos = referencedFirst(infos)
	if err := castore.SyncBlobs(ctx, r.Blobs); err != nil {
		return fmt.Errorf("sync outputs: %w", err)
	}
	return pathinfo.PutAll(ctx, r.PathInfos, infos)
}

// checkFixed compares a fixed output with the hash its derivation names,
// as Nix reports a mismatch.
func (r *Realiser) checkFixed(ctx context.Context, n *drvNode, node *castorev1.Node, narSHA256 [32]byte) (nixhash.CA, error) {
	o := n.drv.Outputs["out"]
	recursive, algoName, err := derivation.ParseHashAlgo(o.HashAlgo)
	if err != nil {
		return nixhash.CA{}, err
	}
	algo, err := nixhash.ParseAlgo(algoName)
	if err != nil {
		return nixhash.CA{}, err
	}
	h := algo.New()
	method := nixhash.Flat
	switch {
	case recursive && algo == nixhash.SHA256:
		h = nil
		method = nixhash.Recursive
	case recursive:
		method = nixhash.Recursive
		if err := narcastore.Render(ctx, h, castore.RenameNode(node, nil), r.Blobs, r.Dirs); err != nil {
			return nixhash.CA{}, err
		}
	default:
		f := node.GetFile()
		if f == nil {
			return nixhash.CA{}, fmt.Errorf("fixed-output derivation '%s': output is not a regular file, as flat hashing needs", n.path)
		}
		d, _ := castore.DigestFromBytes(f.GetDigest())
		rd, err := r.Blobs.Open(ctx, d)
		if err != nil {
			return nixhash.CA{}, err
		}
		_, err = io.Copy(h, rd)
		rd.Close()
		if err != nil {
			return nixhash.CA{}, err
		}
	}
	var got nixhash.Hash
	if h == nil {
		got = nixhash.Hash{Algo: nixhash.SHA256, Digest: narSHA256[:]}
	} else {
		got = nixhash.Hash{Algo: algo, Digest: h.Sum(nil)}
	}
	want, err := nixhash.ParseAs(algo, o.Hash)
	if err != nil {
		return nixhash.CA{}, fmt.Errorf("fixed-output derivation '%s': hash %q: %w", n.path, o.Hash, err)
	}
	if !got.Equal(want) {
		return nixhash.CA{}, &build.Failure{Message: fmt.Sprintf("hash mismatch in fixed-output derivation '%s':\n  specified: %s\n     got:    %s", n.path, want.SRI(), got.SRI()), ExitCode: 0}
	}
	return nixhash.CA{Method: method, Hash: got}, nil
}

// referencedFirst orders path infos so each comes after the others of the
// set it refers to.
func referencedFirst(infos []*storev1.PathInfo) []*storev1.PathInfo {
	byName := map[string]*storev1.PathInfo{}
	for _, info := range infos {
		byName[string(castore.NodeName(info.GetNode()))] = info
	}
	var out []*storev1.PathInfo
	done := map[string]bool{}
	var visit func(info *storev1.PathInfo)
	visit = func(info *storev1.PathInfo) {
		name := string(castore.NodeName(info.GetNode()))
		if done[name] {
			return
		}
		done[name] = true
		for _, ref := range info.GetNarinfo().GetReferenceNames() {
			if dep, ok := byName[ref]; ok && ref != name {
				visit(dep)
			}
		}
		out = append(out, info)
	}
	for _, info := range infos {
		visit(info)
	}
	return out
}

// RealiseDerivation builds one derivation given inline, as a remote
// builder receives it (Nix's BuildDerivation): it has no input
// derivations, its input sources are the whole closure of its inputs,
// which must be in the store, and drvPath names it for the outputs'
// deriver and the logs. Outputs already present are kept.
func (r *Realiser) RealiseDerivation(ctx context.Context, drvPath string, drv *derivation.Derivation) (map[string]string, error) {
	if len(drv.InputDerivations) > 0 {
		return nil, fmt.Errorf("derivation %s: inline derivations carry their inputs as sources, not input derivations", drvPath)
	}
	n := &drvNode{path: drvPath, drv: drv, done: make(chan struct{})}
	defer close(n.done)
	r.update(func(s *Status) { *s = Status{Total: 1} })
	done, err := r.present(ctx, drv)
	if err != nil {
		return nil, fmt.Errorf("build of '%s' failed: %w", drvPath, err)
	}
	if done {
		r.update(func(s *Status) { s.Present++ })
	} else if err := r.build(ctx, n); err != nil {
		return nil, fmt.Errorf("build of '%s' failed: %w", drvPath, err)
	}
	outs := map[string]string{}
	for name, o := range drv.Outputs {
		outs[name] = o.Path
	}
	return outs, nil
}
