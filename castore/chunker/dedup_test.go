package chunker

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"lukechampine.com/blake3"
)

// BenchmarkDedup measures how much of a newer tree is already stored when
// its older version is, chunking file by file as castore does (so an
// unchanged file dedups whole at any chunk size, and chunk size decides how
// much of a changed large file is shared). Pairs come from TVIX_DEDUP_PAIRS
// ("olddir:newdir ...", see scripts/bench-chunking).
func BenchmarkDedup(b *testing.B) {
	spec := os.Getenv("TVIX_DEDUP_PAIRS")
	if spec == "" {
		b.Skip("set TVIX_DEDUP_PAIRS (scripts/bench-chunking does)")
	}
	type pair struct{ old, new [][]byte }
	var pairs []pair
	for _, p := range strings.Fields(spec) {
		o, n, _ := strings.Cut(p, ":")
		pairs = append(pairs, pair{readTree(b, o), readTree(b, n)})
	}
	for _, p := range []struct {
		name string
		p    Params
	}{
		{"16K-64K-256K", Params{16 << 10, 64 << 10, 256 << 10}},
		{"32K-128K-512K", Params{32 << 10, 128 << 10, 512 << 10}},
		{"64K-128K-256K", Params{64 << 10, 128 << 10, 256 << 10}},
		{"64K-256K-1M", Params{64 << 10, 256 << 10, 1 << 20}},
		{"128K-256K-512K", Params{128 << 10, 256 << 10, 512 << 10}},
		{"256K-1M-4M", Params{256 << 10, 1 << 20, 4 << 20}},
	} {
		b.Run(p.name, func(b *testing.B) {
			c := MustNew(p.p)
			var shared, total, chunks int64
			for i := 0; i < b.N; i++ {
				shared, total, chunks = 0, 0, 0
				for _, pr := range pairs {
					have := map[[32]byte]bool{}
					for _, f := range pr.old {
						for _, ch := range split(c, f) {
							have[blake3.Sum256(ch)] = true
						}
					}
					for _, f := range pr.new {
						for _, ch := range split(c, f) {
							chunks++
							total += int64(len(ch))
							if have[blake3.Sum256(ch)] {
								shared += int64(len(ch))
							}
						}
					}
				}
			}
			b.ReportMetric(100*float64(shared)/float64(total), "dedup%")
			b.ReportMetric(float64(total)/float64(chunks)/1024, "avgKiB")
		})
	}
}

// readTree returns the contents of every regular file below dir.
func readTree(b *testing.B, dir string) [][]byte {
	var files [][]byte
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(p)
		files = append(files, data)
		return err
	})
	if err != nil {
		b.Fatalf("read tree %s: %v", dir, err)
	}
	return files
}
