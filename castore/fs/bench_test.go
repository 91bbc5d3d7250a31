package fs

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/blobstore"
	"github.com/tvix-go/tvix/castore/dirstore"
	"github.com/tvix-go/tvix/internal/testenv"
	"github.com/tvix-go/tvix/store/pathinfo"
)

// BenchmarkFS compares the mount with the same files on local disk, in one
// run (scripts/bench-fs runs it and docs/benchmarks-fs.md has results):
// sequential read of a large file (cold: page cache dropped before each
// read, warm: read again), find+stat of a tree of ~20k entries, and the
// latency to the first byte of a file not opened before. Blobs live in the
// embedded default's pack store on the same disk as the native copy.
//
// TVIX_FS_BENCH_SIZE sets the large file's size in MiB (default 1024);
// TVIX_FS_BENCH_DIR keeps the generated files between runs;
// TVIX_FS_BENCH_READAHEAD_KIB overrides Options.ReadAheadKiB.
func BenchmarkFS(b *testing.B) {
	testenv.FUSE(b)
	sizeMiB := 1024
	if v := os.Getenv("TVIX_FS_BENCH_SIZE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatalf("TVIX_FS_BENCH_SIZE: %v", err)
		}
		sizeMiB = n
	}
	dir := os.Getenv("TVIX_FS_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	native := filepath.Join(dir, "native")
	big := filepath.Join(native, "big")
	tree := filepath.Join(native, "tree")
	makeBigFile(b, big, int64(sizeMiB)<<20)
	files := makeTree(b, tree, 100, 199)

	blobs, err := blobstore.NewPack(filepath.Join(dir, "packs"))
	if err != nil {
		b.Fatal(err)
	}
	s := &testStore{blobs: blobs, dirs: dirstore.NewMemory(), paths: pathinfo.NewMemory()}
	bigBase := s.addStorePath(b, big, "big")
	treeBase := s.addStorePath(b, tree, "tree")
	logs := testLogger(b, nil)
	ra := 0 // DefaultReadAheadKiB
	if v := os.Getenv("TVIX_FS_BENCH_READAHEAD_KIB"); v != "" {
		ra, err = strconv.Atoi(v)
		must(b, err)
	}

	mountFresh := func(b *testing.B) string {
		m := mountServices(b, s.services(), Options{Logger: logs, ReadAheadKiB: ra})
		return m.Mountpoint()
	}
	mp := mountFresh(b)
	// The same tree, but the big blob read straight from the native file:
	// what the FUSE layer costs, apart from the blob store.
	info, err := s.paths.Get(context.Background(), fakeStorePath("big").Digest)
	must(b, err)
	bigDigest, err := castore.DigestFromBytes(info.GetNode().GetFile().GetDigest())
	must(b, err)
	fileSvc := s.services()
	fileSvc.Blobs = &oneFileBlobs{BlobService: s.blobs, digest: bigDigest, path: big}
	mpFile := mountServices(b, fileSvc, Options{Logger: logs, ReadAheadKiB: ra}).Mountpoint()
	canDrop := dropCaches() == nil

	b.Run("SeqRead", func(b *testing.B) {
		for _, c := range []struct{ name, path string }{
			{"native", big},
			{"tvix-onefile", filepath.Join(mpFile, bigBase)},
			{"tvix-chunked", filepath.Join(mp, bigBase)},
			// The chunked store read directly, without FUSE: the
			// ceiling for tvix-chunked.
			{"store-chunked", ""},
		} {
			for _, cold := range []bool{true, false} {
				name := c.name + "/warm"
				if cold {
					name = c.name + "/cold"
				}
				b.Run(name, func(b *testing.B) {
					if cold && !canDrop {
						b.Skip("cannot write /proc/sys/vm/drop_caches")
					}
					read := func() { readAll(b, c.path) }
					if c.path == "" {
						read = func() { readBlob(b, blobs, bigDigest) }
					}
					if !cold {
						read()
					}
					rss0 := rssMiB()
					b.SetBytes(int64(sizeMiB) << 20)
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						if cold {
							b.StopTimer()
							must(b, dropCaches())
							b.StartTimer()
						}
						read()
					}
					b.StopTimer()
					runtime.GC()
					b.ReportMetric(rssMiB(), "RSS-MiB")
					b.ReportMetric(rssMiB()-rss0, "RSS-growth-MiB")
				})
			}
		}
	})

	b.Run("FindStat", func(b *testing.B) {
		for _, c := range []string{"native", "tvix"} {
			for _, cold := range []bool{true, false} {
				name := c + "/warm"
				if cold {
					name = c + "/cold"
				}
				b.Run(name, func(b *testing.B) {
					if cold && !canDrop {
						b.Skip("cannot write /proc/sys/vm/drop_caches")
					}
					path := func() string {
						if c == "native" {
							return tree
						}
						if cold {
							// A new mount: nothing fetched, nothing numbered.
							return filepath.Join(mountFresh(b), treeBase)
						}
						return filepath.Join(mp, treeBase)
					}
					if !cold {
						findStat(b, path(), files)
					}
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						var p string
						if cold {
							b.StopTimer()
							p = path()
							must(b, dropCaches())
							b.StartTimer()
						} else {
							p = path()
						}
						findStat(b, p, files)
					}
				})
			}
		}
	})

	// The tree again with everything in memory: the FUSE layer's share of
	// the first-byte latency.
	mem := newTestStore()
	memTreeBase := mem.addStorePath(b, tree, "tree")

	b.Run("FirstByte", func(b *testing.B) {
		for _, c := range []string{"native", "tvix-chunked", "tvix-memory"} {
			b.Run(c, func(b *testing.B) {
				root := tree
				switch c {
				case "tvix-chunked":
					root = filepath.Join(mountFresh(b), treeBase)
				case "tvix-memory":
					root = filepath.Join(mountServices(b, mem.services(), Options{Logger: logs}).Mountpoint(), memTreeBase)
				}
				if canDrop {
					must(b, dropCaches())
				}
				// Every op opens 200 files not opened before.
				names := make([]string, 0, files)
				for d := 0; d < 100; d++ {
					for f := 0; f < 199; f++ {
						names = append(names, filepath.Join(root, fmt.Sprintf("d%03d/f%03d", d, f)))
					}
				}
				rand.New(rand.NewPCG(1, 2)).Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
				buf := make([]byte, 1)
				const perOp = 200
				if b.N*perOp > len(names) {
					b.Fatalf("-benchtime %dx needs %d files, the tree has %d", b.N, b.N*perOp, len(names))
				}
				b.ResetTimer()
				for i := 0; i < b.N*perOp; i++ {
					f, err := os.Open(names[i])
					if err != nil {
						b.Fatal(err)
					}
					if _, err := f.Read(buf); err != nil {
						b.Fatal(err)
					}
					f.Close()
				}
				b.StopTimer()
				b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*perOp), "µs/file")
			})
		}
	})
}

// oneFileBlobs serves one blob from a plain file.
type oneFileBlobs struct {
	BlobService
	digest castore.Digest
	path   string
}

func (o *oneFileBlobs) Open(ctx context.Context, d castore.Digest) (castore.BlobReader, error) {
	if d != o.digest {
		return o.BlobService.Open(ctx, d)
	}
	f, err := os.Open(o.path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &fileBlob{SectionReader: io.NewSectionReader(f, 0, fi.Size()), f: f}, nil
}

type fileBlob struct {
	*io.SectionReader
	f *os.File
}

func (f *fileBlob) Close() error { return f.f.Close() }

func must(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}

func dropCaches() error {
	exec.Command("sync").Run()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0)
}

func readAll(b *testing.B, path string) {
	b.Helper()
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, buf); err != nil {
		b.Fatal(err)
	}
}

func readBlob(b *testing.B, blobs castore.BlobService, d castore.Digest) {
	b.Helper()
	r, err := blobs.Open(context.Background(), d)
	must(b, err)
	defer r.Close()
	buf := make([]byte, 1<<20)
	for off := int64(0); off < r.Size(); {
		n, err := r.ReadAt(buf, off)
		if err != nil && err != io.EOF {
			b.Fatal(err)
		}
		off += int64(n)
	}
}

// findStat runs find, which lstats every entry for %s, and checks the count.
func findStat(b *testing.B, dir string, want int) {
	b.Helper()
	out, err := exec.Command("find", dir, "-printf", "%s\n").Output()
	if err != nil {
		b.Fatalf("find %s: %v", dir, err)
	}
	if n := strings.Count(string(out), "\n"); n != want+101 {
		b.Fatalf("find %s: %d entries, want %d", dir, n, want+101)
	}
}

func makeBigFile(b *testing.B, path string, size int64) {
	b.Helper()
	if fi, err := os.Stat(path); err == nil && fi.Size() == size {
		return
	}
	must(b, os.MkdirAll(filepath.Dir(path), 0o755))
	f, err := os.Create(path)
	must(b, err)
	w := bufio.NewWriterSize(f, 1<<20)
	r := rand.NewChaCha8([32]byte{1})
	if _, err := io.CopyN(w, r, size); err != nil {
		b.Fatal(err)
	}
	must(b, w.Flush())
	must(b, f.Close())
}

// makeTree makes dirs directories of files small files each and returns
// the number of files.
func makeTree(b *testing.B, root string, dirs, files int) int {
	b.Helper()
	if _, err := os.Stat(filepath.Join(root, fmt.Sprintf("d%03d/f%03d", dirs-1, files-1))); err == nil {
		return dirs * files
	}
	for d := 0; d < dirs; d++ {
		dd := filepath.Join(root, fmt.Sprintf("d%03d", d))
		must(b, os.MkdirAll(dd, 0o755))
		for f := 0; f < files; f++ {
			must(b, os.WriteFile(filepath.Join(dd, fmt.Sprintf("f%03d", f)), []byte(fmt.Sprintf("file %d/%d\n", d, f)), 0o644))
		}
	}
	return dirs * files
}

// rssMiB is the resident memory of this process, which serves the mount.
func rssMiB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}
