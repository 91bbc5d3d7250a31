package fstree

import (
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"lukechampine.com/blake3"

	"github.com/tvix-go/tvix/castore/blobstore"
	"github.com/tvix-go/tvix/castore/chunker"
	"github.com/tvix-go/tvix/castore/dirstore"
)

// benchTree is the tree the benchmarks import: TVIX_BENCH_TREE (made by
// scripts/bench-castore, 1 GB of mixed sizes) or a small generated one.
func benchTree(b *testing.B) (string, int64) {
	dir := os.Getenv("TVIX_BENCH_TREE")
	if dir == "" {
		dir = b.TempDir()
		makeTree(&testing.T{}, filepath.Join(dir, "t"), 32<<20)
	}
	var total int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, _ error) error {
		if d != nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				total += fi.Size()
			}
		}
		return nil
	})
	return dir, total
}

// reportCPU adds the process's CPU time (user+system, all threads, GC
// included) per op: on a machine shared with other jobs, wall time says
// how much CPU the benchmark got, CPU time what the work costs.
func reportCPU(b *testing.B) func() {
	var before unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &before)
	return func() {
		var after unix.Rusage
		unix.Getrusage(unix.RUSAGE_SELF, &after)
		sys := time.Duration(after.Stime.Nano() - before.Stime.Nano())
		cpu := time.Duration(after.Utime.Nano()-before.Utime.Nano()) + sys
		b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
		// System time is mostly page faults and reads: it separates what
		// the kernel charges for fresh memory from the work in the process.
		b.ReportMetric(sys.Seconds()/float64(b.N), "sys-s/op")
		b.ReportMetric(float64(after.Minflt-before.Minflt)/float64(b.N), "minflt/op")
	}
}

// BenchmarkImportMemory is tvix's whole import into memory://.
func BenchmarkImportMemory(b *testing.B) {
	dir, total := benchTree(b)
	b.SetBytes(total)
	defer reportCPU(b)()
	for i := 0; i < b.N; i++ {
		blobs := blobstore.NewMemory()
		if _, err := Import(context.Background(), dir, blobs, dirstore.NewMemory(), ImportOptions{}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer() // freeing the store is not part of the import
		blobs.Close()
		b.StartTimer()
	}
}

// BenchmarkImportDefault is the import into the embedded default: pack
// blob store and bbolt directories.
func BenchmarkImportDefault(b *testing.B) {
	dir, total := benchTree(b)
	b.SetBytes(total)
	defer reportCPU(b)()
	for i := 0; i < b.N; i++ {
		store := b.TempDir()
		blobs, err := blobstore.NewPack(filepath.Join(store, "packs"))
		if err != nil {
			b.Fatal(err)
		}
		dirs, err := dirstore.NewBolt(filepath.Join(store, "db.bolt"))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Import(context.Background(), dir, blobs, dirs, ImportOptions{Workers: benchWorkers()}); err != nil {
			b.Fatal(err)
		}
		dirs.Close()
		b.StopTimer() // freeing the store is not part of the import
		blobs.Close()
		b.StartTimer()
	}
}

// BenchmarkLimitHashAndChunk is the work no import can avoid, done by the
// libraries directly on both cores: BLAKE3 of each file, its chunk
// boundaries and BLAKE3 of each chunk.
func BenchmarkLimitHashAndChunk(b *testing.B) {
	dir, total := benchTree(b)
	b.SetBytes(total)
	cdc := chunker.MustNew(chunker.Default)
	defer reportCPU(b)()
	for i := 0; i < b.N; i++ {
		var files []string
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, _ error) error {
			if d != nil && d.Type().IsRegular() {
				files = append(files, p)
			}
			return nil
		})
		work := make(chan string)
		var wg sync.WaitGroup
		for w := 0; w < max(16, 2*runtime.GOMAXPROCS(0)); w++ { // as many as Import uses
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, 2*chunker.Default.Max)
				for p := range work {
					f, err := os.Open(p)
					if err != nil {
						b.Error(err)
						continue
					}
					h := blake3.New(32, nil)
					n := 0
					for {
						m, err := io.ReadFull(f, buf[n:])
						n += m
						h.Write(buf[n-m : n])
						final := err != nil
						off := 0
						for n-off >= chunker.Default.Max || (final && off < n) {
							c := cdc.Cut(buf[off:n])
							blake3.Sum256(buf[off : off+c])
							off += c
						}
						n = copy(buf, buf[off:n])
						if final {
							break
						}
					}
					var sum [32]byte
					h.Sum(sum[:0])
					f.Close()
				}
			}()
		}
		for _, p := range files {
			work <- p
		}
		close(work)
		wg.Wait()
	}
}

// benchWorkers is TVIX_BENCH_WORKERS (0: Import's default).
func benchWorkers() int {
	n, _ := strconv.Atoi(os.Getenv("TVIX_BENCH_WORKERS"))
	return n
}
