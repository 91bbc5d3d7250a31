package narcastore

import (
	"context"
	"testing"

	"github.com/tvix-go/tvix/castore/blobstore"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/castore/dirstore"
)

// The calculator answers as CalculateNAR does, the same when asked again,
// and fails for a node whose contents its store lacks.
func TestCalculatorRemembers(t *testing.T) {
	ctx := context.Background()
	blobs := blobstore.NewMemory()
	w, _ := blobs.Put(ctx)
	w.Write([]byte("hello"))
	d, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	node := &castorev1.Node{Node: &castorev1.Node_File{File: &castorev1.FileNode{Digest: d.Bytes(), Size: 5}}}
	dirs := dirstore.NewMemory()
	wantSize, wantSum, err := CalculateNAR(ctx, node, blobs, dirs)
	if err != nil {
		t.Fatal(err)
	}
	calc := NewCalculator(blobs, dirs)
	for i := 0; i < 2; i++ {
		size, sum, err := calc.CalculateNAR(ctx, node)
		if err != nil || size != wantSize || sum != wantSum {
			t.Fatalf("call %d: %d %x %v, want %d %x", i, size, sum, err, wantSize, wantSum)
		}
	}
	empty := NewCalculator(blobstore.NewMemory(), dirs)
	if _, _, err := empty.CalculateNAR(ctx, node); err == nil {
		t.Fatal("a calculator without the blob answered")
	}
}
