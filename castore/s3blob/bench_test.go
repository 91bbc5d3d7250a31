package s3blob

import (
	"context"
	"fmt"
	"math/rand"
	"testing"

	"github.com/tvix-go/tvix/internal/scaletest"
)

// TestRawThroughput is scripts/bench-scale's limit: the S3 server's own
// PUT and GET throughput for TVIX_BENCH_RAW_MB megabytes in objects of
// the chunker's average size, 8 at a time (as many as a writer of
// NewObjectStore keeps in flight). It only runs when asked.
func TestRawThroughput(t *testing.T) {
	mb := scaletest.Asked(t, "TVIX_BENCH_RAW_MB")
	ctx := context.Background()
	b, err := NewBucket(ctx, config(t, scaletest.S3URL(t)))
	if err != nil {
		t.Fatal(err)
	}
	const object = 256 << 10
	n := mb << 20 / object
	data := make([]byte, object)
	rand.New(rand.NewSource(1)).Read(data)
	run := func(op func(i int) error) float64 {
		return float64(n*object) / scaletest.Parallel(t, n, 8, op).Seconds() / 1e6
	}
	put := run(func(i int) error { return b.Put(ctx, fmt.Sprintf("raw/%d", i), data) })
	get := run(func(i int) error { _, err := b.Get(ctx, fmt.Sprintf("raw/%d", i)); return err })
	fmt.Printf("raw-s3 %d MB: PUT %.0f MB/s, GET %.0f MB/s\n", mb, put, get)
}
