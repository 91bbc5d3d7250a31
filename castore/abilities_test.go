package castore_test

import (
	"context"
	"testing"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/blobstore"
	"github.com/tvix-go/tvix/castore/combined"
	"github.com/tvix-go/tvix/castore/dirstore"
)

// opaque wraps a service and lets callers look through it.
type opaque struct{ castore.BlobService }

func (o opaque) Unwrap() any { return o.BlobService }

// remote stands for a service in another process.
type remote struct{ castore.BlobService }

func (remote) InProcess() bool { return false }

func TestAsLooksThroughWrappers(t *testing.T) {
	mem := blobstore.NewMemory()
	defer mem.Close()
	for _, tc := range []struct {
		name       string
		svc        castore.BlobService
		wantSync   bool
		wantInProc bool
	}{
		{"store itself", mem, true, true},
		{"unwrappable wrapper", opaque{mem}, true, true},
		{"two wrappers deep", opaque{opaque{mem}}, true, true},
		{"wrapper without Unwrap", struct{ castore.BlobService }{mem}, false, false},
		{"read-through over a local far store", combined.Blobs{Near: mem, Far: blobstore.NewMemory()}, true, true},
		{"read-through over a remote far store", combined.Blobs{Near: mem, Far: remote{blobstore.NewMemory()}}, true, false},
		{"a wrapper's own answer wins", opaque{remote{mem}}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, ok := castore.As[castore.Syncer](tc.svc); ok != tc.wantSync {
				t.Errorf("As[Syncer] found = %v, want %v", ok, tc.wantSync)
			}
			if got := castore.InProcess(tc.svc); got != tc.wantInProc {
				t.Errorf("InProcess = %v, want %v", got, tc.wantInProc)
			}
		})
	}
	if castore.InProcess(dirstore.NewMemory()) != true {
		t.Error("memory directory service says it is remote")
	}
}

// Materialize copies a far blob near, verified, and leaves a near one be.
func TestMaterialize(t *testing.T) {
	ctx := context.Background()
	near, far := blobstore.NewMemory(), blobstore.NewMemory()
	w, _ := far.Put(ctx)
	w.Write([]byte("only far has it"))
	d, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	m, ok := castore.As[castore.Materializer](combined.Blobs{Near: near, Far: far})
	if !ok {
		t.Fatal("read-through blobs are not a Materializer")
	}
	if err := m.Materialize(ctx, d); err != nil {
		t.Fatal(err)
	}
	if ok, err := near.Has(ctx, d); !ok || err != nil {
		t.Fatalf("near store after Materialize: %v %v", ok, err)
	}
	if err := m.Materialize(ctx, castore.Digest{1}); err == nil {
		t.Fatal("materialized a blob neither store has")
	}
}
