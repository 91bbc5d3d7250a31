package narcastore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"lukechampine.com/blake3"

	"github.com/tvix-go/tvix/internal/nixtest"
	"github.com/tvix-go/tvix/nix/nar"
)

// benchTrees are the shapes measured: one big file (throughput-bound) and
// many small files (per-node overhead).
var benchTrees = []struct {
	name  string
	files int
	size  int
}{
	{"1x256MiB", 1, 256 << 20},
	{"16384x4KiB", 16384, 4 << 10},
}

func benchData(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// benchNAR builds the NAR of a tree in memory: files spread over
// directories of 128 entries.
func benchNAR(b *testing.B, files, size int) []byte {
	b.Helper()
	data := benchData(size, uint64(files))
	var buf bytes.Buffer
	w := nar.NewWriter(&buf)
	must := func(err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	if files == 1 {
		must(w.File(false, uint64(size), bytes.NewReader(data)))
	} else {
		must(w.Directory())
		for d := 0; d*128 < files; d++ {
			must(w.Entry(fmt.Appendf(nil, "d%04d", d)))
			must(w.Directory())
			for f := d * 128; f < min(files, (d+1)*128); f++ {
				must(w.Entry(fmt.Appendf(nil, "f%06d", f)))
				data[0], data[1] = byte(f), byte(f>>8) // distinct blobs
				must(w.File(f%3 == 0, uint64(size), bytes.NewReader(data)))
			}
			must(w.Leave())
		}
		must(w.Leave())
	}
	must(w.Close())
	return buf.Bytes()
}

// fileContents returns the contents of every file in a NAR, in order, as
// slices of the NAR itself (as the ingest path sees them: inside a larger
// buffer, which matters to the BLAKE3 library's copying).
func fileContents(b *testing.B, in []byte) [][]byte {
	var out [][]byte
	r := nar.NewReader(bytes.NewReader(in))
	for {
		n, err := r.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			b.Fatal(err)
		}
		if n.Kind == nar.KindFile {
			off := r.Offset()
			out = append(out, in[off:off+n.Size])
		}
	}
}

// BenchmarkRawHash is the floor Ingest is measured against, the hashing
// castore and Nix require of the same bytes, one after the other on one
// core: SHA-256 of the whole NAR (64 KiB writes) and BLAKE3 of each file.
func BenchmarkRawHash(b *testing.B) {
	for _, tr := range benchTrees {
		in := benchNAR(b, tr.files, tr.size)
		files := fileContents(b, in)
		b.Run(tr.name, func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			h3 := blake3.New(32, nil)
			var sum [32]byte
			defer reportCPU(b)()
			for b.Loop() {
				h2 := sha256.New()
				for off := 0; off < len(in); off += 64 << 10 {
					h2.Write(in[off:min(off+64<<10, len(in))])
				}
				h2.Sum(sum[:0])
				for _, f := range files {
					h3.Reset()
					for off := 0; off < len(f); off += 64 << 10 {
						h3.Write(f[off:min(off+64<<10, len(f))])
					}
					h3.Sum(sum[:0])
				}
			}
		})
	}
}

// BenchmarkIngest parses the NAR, hashes it (sha256) and puts every file
// into a BlobService that hashes (BLAKE3) without storing, and the
// directories into the memory DirectoryService.
func BenchmarkIngest(b *testing.B) {
	ctx := context.Background()
	for _, tr := range benchTrees {
		in := benchNAR(b, tr.files, tr.size)
		b.Run(tr.name, func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			defer reportCPU(b)()
			for b.Loop() {
				blobs := &memBlobs{discard: true}
				if _, _, _, err := Ingest(ctx, bytes.NewReader(in), blobs, newCountingDirs()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// reportCPU adds the process CPU time per op as a metric: on a shared
// machine wall time depends on the neighbours, CPU time much less.
// Call it after setup; the returned func reports.
func reportCPU(b *testing.B) func() {
	runtime.GC() // setup garbage is not the measured code's cost
	start := cpuTime()
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64(cpuTime()-start)/float64(b.N)/1e6, "cpu-ms/op")
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRender renders from the in-memory fake stores to io.Discard.
func BenchmarkRender(b *testing.B) {
	ctx := context.Background()
	for _, tr := range benchTrees {
		in := benchNAR(b, tr.files, tr.size)
		blobs, dirs := newMemBlobs(), newCountingDirs()
		root, _, _, err := Ingest(ctx, bytes.NewReader(in), blobs, dirs)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tr.name, func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				if err := Render(ctx, io.Discard, root, blobs, dirs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchTreeOnDisk restores a bench NAR into a directory (via our own
// reader), once per process.
func benchTreeOnDisk(b *testing.B, dir string, in []byte) string {
	b.Helper()
	root := filepath.Join(dir, "tree")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	r := nar.NewReader(bytes.NewReader(in))
	for {
		n, err := r.Next()
		if err == io.EOF {
			return root
		}
		if err != nil {
			b.Fatal(err)
		}
		p := filepath.Join(root, n.Path())
		switch n.Kind {
		case nar.KindDirectory:
			err = os.MkdirAll(p, 0o755)
		case nar.KindFile:
			mode := os.FileMode(0o644)
			if n.Executable {
				mode = 0o755
			}
			var f *os.File
			if f, err = os.OpenFile(p, os.O_CREATE|os.O_WRONLY, mode); err == nil {
				_, err = io.Copy(f, n.Contents)
				f.Close()
			}
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDump compares producing a NAR from the filesystem: nix-store
// --dump against nar.DumpPath, and Render from castore for reference.
func BenchmarkDump(b *testing.B) {
	nixtest.Require(b)
	dir := b.TempDir()
	for i, tr := range benchTrees {
		in := benchNAR(b, tr.files, tr.size)
		tree := benchTreeOnDisk(b, filepath.Join(dir, fmt.Sprint(i)), in)
		b.Run(tr.name+"/nix-store--dump", func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				cmd := nixtest.Command("nix-store", "--dump", tree)
				null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
				if err != nil {
					b.Fatal(err)
				}
				cmd.Stdout = null
				err = cmd.Run()
				null.Close()
				if err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tr.name+"/nar.DumpPath", func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				if err := nar.DumpPath(io.Discard, tree); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkIngestVsRaw alternates the raw hashing and Ingest of the same
// NAR in every iteration, so both see the same machine load, and reports
// both times and their ratio (wall and process CPU).
func BenchmarkIngestVsRaw(b *testing.B) {
	ctx := context.Background()
	for _, tr := range benchTrees {
		in := benchNAR(b, tr.files, tr.size)
		files := fileContents(b, in)
		b.Run(tr.name, func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			h3 := blake3.New(32, nil)
			var sum [32]byte
			var rawWall, ingWall, rawCPU, ingCPU time.Duration
			runtime.GC()
			for b.Loop() {
				w0, c0 := time.Now(), cpuTime()
				h2 := sha256.New()
				for off := 0; off < len(in); off += 64 << 10 {
					h2.Write(in[off:min(off+64<<10, len(in))])
				}
				h2.Sum(sum[:0])
				for _, f := range files {
					h3.Reset()
					for off := 0; off < len(f); off += 64 << 10 {
						h3.Write(f[off:min(off+64<<10, len(f))])
					}
					h3.Sum(sum[:0])
				}
				w1, c1 := time.Now(), cpuTime()
				if _, _, _, err := Ingest(ctx, bytes.NewReader(in), &memBlobs{discard: true}, newCountingDirs()); err != nil {
					b.Fatal(err)
				}
				w2, c2 := time.Now(), cpuTime()
				rawWall += w1.Sub(w0)
				ingWall += w2.Sub(w1)
				rawCPU += c1 - c0
				ingCPU += c2 - c1
			}
			n := float64(b.N)
			b.ReportMetric(float64(rawWall)/n/1e6, "raw-ms/op")
			b.ReportMetric(float64(ingWall)/n/1e6, "ingest-ms/op")
			b.ReportMetric(float64(ingWall)/float64(rawWall), "wall-ratio")
			b.ReportMetric(float64(rawCPU)/n/1e6, "raw-cpu-ms/op")
			b.ReportMetric(float64(ingCPU)/n/1e6, "ingest-cpu-ms/op")
			b.ReportMetric(float64(ingCPU)/float64(rawCPU), "cpu-ratio")
		})
	}
}

// BenchmarkNesting ingests and renders NARs of directories nested one in
// another, at depths n, 2n and 4n (scripts/bench-nesting puts them beside
// Nix's own NAR parser). B/op is every byte allocated: linear in the depth.
func BenchmarkNesting(b *testing.B) {
	ctx := context.Background()
	for _, depth := range []int{25_000, 50_000, 100_000} {
		in := nested(b, depth)
		b.Run(fmt.Sprintf("Ingest/depth=%d", depth), func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, _, err := Ingest(ctx, bytes.NewReader(in), newMemBlobs(), newCountingDirs()); err != nil {
					b.Fatal(err)
				}
			}
		})
		blobs, dirs := newMemBlobs(), newCountingDirs()
		root, _, _, err := Ingest(ctx, bytes.NewReader(in), blobs, dirs)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("Render/depth=%d", depth), func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				if err := Render(ctx, io.Discard, root, blobs, dirs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
