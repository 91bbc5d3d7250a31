// Package benchreal measures NAR ingest and render against the real
// castore backends (the chunking file blob store and the memory directory
// store) next to nix-store --dump of the same tree. It is a package of its
// own so that changes in those backends cannot break narcastore's tests.
package benchreal

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/tvix-go/tvix/castore/blobstore"
	"github.com/tvix-go/tvix/castore/dirstore"
	"github.com/tvix-go/tvix/internal/nixtest"
	"github.com/tvix-go/tvix/nix/nar"
	"github.com/tvix-go/tvix/store/narcastore"
)

var trees = []struct {
	name        string
	files, size int
}{
	{"1x256MiB", 1, 256 << 20},
	{"16384x4KiB", 16384, 4 << 10},
}

// makeTree writes files pseudo-random files under dir/tree (or the file
// dir/tree itself when files == 1).
func makeTree(b *testing.B, dir string, files, size int) string {
	b.Helper()
	rng := rand.New(rand.NewPCG(uint64(files), 9))
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	root := filepath.Join(dir, "tree")
	write := func(p string, exec bool) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if exec {
			mode = 0o755
		}
		if err := os.WriteFile(p, data, mode); err != nil {
			b.Fatal(err)
		}
	}
	if files == 1 {
		write(root, false)
		return root
	}
	for f := 0; f < files; f++ {
		data[0], data[1] = byte(f), byte(f>>8)
		write(filepath.Join(root, fmt.Sprintf("d%04d", f/128), fmt.Sprintf("f%06d", f)), f%3 == 0)
	}
	return root
}

func BenchmarkReal(b *testing.B) {
	nixtest.Require(b)
	ctx := context.Background()
	for _, tr := range trees {
		dir := b.TempDir()
		tree := makeTree(b, dir, tr.files, tr.size)
		var narBuf bytes.Buffer
		if err := nar.DumpPath(&narBuf, tree); err != nil {
			b.Fatal(err)
		}
		in := narBuf.Bytes()

		b.Run(tr.name+"/nix-store--dump", func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
				if err != nil {
					b.Fatal(err)
				}
				cmd := nixtest.Command("nix-store", "--dump", tree)
				cmd.Stdout = null
				err = cmd.Run()
				null.Close()
				if err != nil {
					b.Fatal(err)
				}
			}
		})

		// Ingest into a fresh file blob store each time, so every chunk is
		// really compressed and written (no dedup against a previous run).
		var n int
		b.Run(tr.name+"/Ingest-fileblobstore", func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				n++
				blobs, err := blobstore.NewFile(filepath.Join(dir, fmt.Sprintf("blobs%d", n)))
				if err != nil {
					b.Fatal(err)
				}
				if _, _, _, err := narcastore.Ingest(ctx, bytes.NewReader(in), blobs, dirstore.NewMemory()); err != nil {
					b.Fatal(err)
				}
				blobs.Close()
			}
		})

		blobs, err := blobstore.NewFile(filepath.Join(dir, "render-blobs"))
		if err != nil {
			b.Fatal(err)
		}
		dirs := dirstore.NewMemory()
		root, _, _, err := narcastore.Ingest(ctx, bytes.NewReader(in), blobs, dirs)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tr.name+"/Render-fileblobstore", func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				if err := narcastore.Render(ctx, io.Discard, root, blobs, dirs); err != nil {
					b.Fatal(err)
				}
			}
		})
		var out bytes.Buffer
		if err := narcastore.Render(ctx, &out, root, blobs, dirs); err != nil || !bytes.Equal(out.Bytes(), in) {
			b.Fatalf("render from the file blob store differs from the NAR (%v)", err)
		}
		blobs.Close()
	}
}
