package glue

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tvix-go/tvix/build"
	"github.com/tvix-go/tvix/build/buildv1"
	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/blobstore"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/castore/dirstore"
	"github.com/tvix-go/tvix/nix/derivation"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/importer"
	"github.com/tvix-go/tvix/store/pathinfo"
)

// fakeBuilder writes each output as a file naming the request's inputs,
// fails when the builder is "fail", and records how many ran at once.
type fakeBuilder struct {
	blobs         castore.BlobService
	mu            sync.Mutex
	running, peak int
	built         []string
}

func (f *fakeBuilder) Build(ctx context.Context, req *buildv1.BuildRequest, log io.Writer) (*buildv1.Build, error) {
	f.mu.Lock()
	f.running++
	f.peak = max(f.peak, f.running)
	f.built = append(f.built, req.GetOutputs()[0])
	f.mu.Unlock()
	defer func() { f.mu.Lock(); f.running--; f.mu.Unlock() }()
	time.Sleep(30 * time.Millisecond)
	if req.GetCommandArgs()[0] == "fail" {
		return nil, &build.Failure{Message: "builder failed with exit code 1", ExitCode: 1}
	}
	res := &buildv1.Build{BuildRequest: req}
	for range req.GetOutputs() {
		var names []string
		for _, in := range req.GetInputs() {
			names = append(names, string(castore.NodeName(in)))
		}
		w, _ := f.blobs.Put(ctx)
		io.WriteString(w, strings.Join(names, " "))
		d, err := w.Close()
		if err != nil {
			return nil, err
		}
		res.Outputs = append(res.Outputs, &castorev1.Node{Node: &castorev1.Node_File{File: &castorev1.FileNode{Digest: d.Bytes(), Size: uint64(len(strings.Join(names, " ")))}}})
		// Every output refers to its first input, if any.
		var needles []uint64
		if len(req.GetInputs()) > 0 {
			needles = []uint64{uint64(len(req.GetOutputs()))}
		}
		res.OutputsNeedles = append(res.OutputsNeedles, &buildv1.Build_OutputNeedles{Needles: needles})
	}
	return res, nil
}

type graph struct {
	im  importer.Store
	pis pathinfo.Service
}

// add stores a derivation named name whose builder is builder and which
// uses the "out" output of each dep, returning its path and output path.
func (g graph) add(t *testing.T, name, builder string, deps ...[2]string) (string, string) {
	t.Helper()
	d := derivation.New()
	d.Builder, d.System = builder, "x86_64-linux"
	out := storepath.StoreDir + "/" + strings.Repeat(string("abcdfghijklmnpqr"[len(name)%16]), 32) + "-" + name
	d.Outputs["out"] = derivation.Output{Path: out}
	d.Env["out"], d.Env["name"] = out, name
	var refs []storepath.StorePath
	for _, dep := range deps {
		d.InputDerivations[dep[0]] = []string{"out"}
		sp, _, _ := storepath.ParsePrefix(dep[0])
		refs = append(refs, sp)
	}
	sp, _, err := g.im.AddText(context.Background(), name+".drv", d.ATerm(), refs)
	if err != nil {
		t.Fatal(err)
	}
	return sp.String(), out
}

// Dependencies are built first, several at once within -j, present
// outputs are kept, a failure stops only what depends on it.
func TestRealiseGraph(t *testing.T) {
	ctx := context.Background()
	blobs, dirs, pis := blobstore.NewMemory(), dirstore.NewMemory(), pathinfo.NewMemory()
	g := graph{im: importer.Store{Blobs: blobs, Dirs: dirs, PathInfo: pis}, pis: pis}
	leafA, outA := g.add(t, "a", "ok")
	leafB, outB := g.add(t, "bb", "ok")
	top, outTop := g.add(t, "top", "ok", [2]string{leafA, outA}, [2]string{leafB, outB})
	broken, _ := g.add(t, "broken", "fail")
	above, _ := g.add(t, "above-broken", "ok", [2]string{broken, ""})

	fb := &fakeBuilder{blobs: blobs}
	var last Status
	r := &Realiser{Blobs: blobs, Dirs: dirs, PathInfos: pis, Builder: fb, Jobs: 2, Progress: func(s Status) { last = s }}
	outs, err := r.Realise(ctx, []string{top})
	if err != nil {
		t.Fatal(err)
	}
	if outs[top]["out"] != outTop || fb.peak != 2 || len(fb.built) != 3 || fb.built[2] != strings.TrimPrefix(outTop, "/") {
		t.Fatalf("outputs %v, %d at once, built %v", outs, fb.peak, fb.built)
	}
	if last.Built != 3 || last.Remaining() != 0 {
		t.Fatalf("status %+v", last)
	}
	// The top output refers to its first input, recorded after it.
	sp, _, _ := storepath.ParsePrefix(outTop)
	info, err := pis.Get(ctx, sp.Digest)
	if err != nil || len(info.GetNarinfo().GetReferenceNames()) != 1 || info.GetNarinfo().GetDeriver().GetName() != "top" {
		t.Fatalf("top's path info: %v %v", info, err)
	}

	// Everything is present now: nothing is built again.
	fb.built = nil
	if _, err := r.Realise(ctx, []string{top}); err != nil || len(fb.built) != 0 {
		t.Fatalf("second realise built %v (%v)", fb.built, err)
	}

	if _, err := r.Realise(ctx, []string{storepath.StoreDir + "/00000000000000000000000000000000-absent.drv"}); err == nil || !strings.Contains(err.Error(), "is not in the store") {
		t.Fatalf("a derivation the store lacks: %v", err)
	}

	_, err = r.Realise(ctx, []string{above, leafA})
	var f *build.Failure
	if !errors.As(err, &f) || !strings.Contains(err.Error(), "dependency "+broken+" failed") {
		t.Fatalf("broken dependency: %v", err)
	}
}
