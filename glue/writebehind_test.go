package glue

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/tvix-go/tvix/castore/blobstore"
	"github.com/tvix-go/tvix/castore/dirstore"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/importer"
	"github.com/tvix-go/tvix/store/pathinfo"
	"github.com/tvix-go/tvix/store/storev1"
)

// countingPathInfo counts the batches that reach the inner service.
type countingPathInfo struct {
	pathinfo.Service
	batches, puts int
	fail          error
}

// remotePathInfo stands for a daemon's service: it says it is not in
// this process.
type remotePathInfo struct{ *countingPathInfo }

func (remotePathInfo) InProcess() bool { return false }

// Unwrap lets WriteBehind see that the memory service under the counter
// answers in this process.
func (c *countingPathInfo) Unwrap() any { return c.Service }

func (c *countingPathInfo) PutBatch(ctx context.Context, infos []*storev1.PathInfo) error {
	if c.fail != nil {
		return c.fail
	}
	c.batches++
	for _, info := range infos {
		if _, err := c.Service.Put(ctx, info); err != nil {
			return err
		}
		c.puts++
	}
	return nil
}

// WriteBehind must make what it queues readable at once, store it in
// batches, and report a failed batch.
func TestWriteBehind(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name         string
		files, batch int
		wantBatches  int
		fail         error
	}{
		{"below one batch", 5, 10, 1, nil},
		{"several batches", 25, 10, 3, nil},
		{"failing store", 25, 10, 0, errors.New("disk full")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inner := &countingPathInfo{Service: pathinfo.NewMemory(), fail: tc.fail}
			blobs := blobstore.NewMemory()
			wb := NewWriteBehind(inner, blobs)
			wb.Batch = tc.batch
			cs := CastoreStore{importer.Store{Blobs: blobs, Dirs: dirstore.NewMemory(), PathInfo: wb}}
			sio := StoreIO{Base: nil, Ctx: ctx, Blobs: blobs, PathInfo: wb}
			var paths []storepath.StorePath
			var putErr error
			for i := 0; i < tc.files; i++ {
				body := fmt.Sprintf("file %d", i)
				sp, err := cs.AddText(ctx, "f.txt", []byte(body), nil)
				if err != nil {
					putErr = err
					break
				}
				paths = append(paths, sp)
				// Readable before any flush.
				if got, err := sio.ReadFile(sp.String()); err != nil || string(got) != body {
					t.Fatalf("read back %s: %q %v", sp, got, err)
				}
			}
			err := wb.Flush(ctx)
			if tc.fail != nil {
				if !errors.Is(err, tc.fail) && !errors.Is(putErr, tc.fail) {
					t.Fatalf("flush: %v, put: %v; want %v", err, putErr, tc.fail)
				}
				return
			}
			if err != nil || putErr != nil {
				t.Fatalf("flush: %v, put: %v", err, putErr)
			}
			if inner.batches != tc.wantBatches || inner.puts != tc.files {
				t.Fatalf("%d batches with %d puts, want %d with %d", inner.batches, inner.puts, tc.wantBatches, tc.files)
			}
			for _, sp := range paths {
				if _, err := inner.Get(ctx, sp.Digest); err != nil {
					t.Fatalf("%s not stored: %v", sp, err)
				}
			}
			// A path already stored is not put again.
			if _, err := cs.AddText(ctx, "f.txt", []byte("file 0"), nil); err != nil {
				t.Fatal(err)
			}
			if err := wb.Close(); err != nil || inner.puts != tc.files {
				t.Fatalf("close: %v; %d puts, want %d", err, inner.puts, tc.files)
			}
			// A remote Inner is not asked (its Get may go to substituters):
			// the path is written again.
			remote := NewWriteBehind(remotePathInfo{inner}, blobs)
			cs.PathInfo = remote
			if _, err := cs.AddText(ctx, "f.txt", []byte("file 0"), nil); err != nil {
				t.Fatal(err)
			}
			if err := remote.Flush(ctx); err != nil || inner.puts != tc.files+1 {
				t.Fatalf("remote inner: %v; %d puts, want %d", err, inner.puts, tc.files+1)
			}
		})
	}
}
