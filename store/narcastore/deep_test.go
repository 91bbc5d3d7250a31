package narcastore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/internal/growth"
	"github.com/tvix-go/tvix/nix/nar/nartest"
)

// roundTrip ingests in, renders it back and checks that the bytes and the
// NAR hash agree.
func roundTrip(in []byte) error {
	ctx := context.Background()
	blobs, dirs := newMemBlobs(), newCountingDirs()
	root, size, sum, err := Ingest(ctx, bytes.NewReader(in), blobs, dirs)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	out.Grow(len(in))
	if err := Render(ctx, &out, root, blobs, dirs); err != nil {
		return err
	}
	if !bytes.Equal(out.Bytes(), in) {
		return fmt.Errorf("rendered NAR (%d bytes) differs from the one ingested (%d)", out.Len(), len(in))
	}
	gotSize, gotSum, err := CalculateNAR(ctx, root, blobs, dirs)
	if err != nil {
		return err
	}
	if gotSize != size || gotSum != sum || size != uint64(len(in)) {
		return fmt.Errorf("CalculateNAR says %d bytes %x, Ingest %d bytes %x, the NAR has %d", gotSize, gotSum, size, sum, len(in))
	}
	return nil
}

func nested(t testing.TB, depth int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := nartest.Nested(&b, depth, "d"); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// A NAR of 100,000 nested directories (16.8 MB) used to cost ingest and
// rendering tens of GB (a path string per level); both must be linear.
func TestDeepNestingIsLinear(t *testing.T) {
	if err := roundTrip(nested(t, 100_000)); err != nil {
		t.Fatal(err)
	}
	growth.Linear(t, "ingesting and rendering a NAR 4x as deep", 25_000, func(n int) error { return roundTrip(nested(t, n)) })
}

func TestWideDirectoryIsLinear(t *testing.T) {
	wide := func(n int) error {
		var b bytes.Buffer
		if err := nartest.Wide(&b, n); err != nil {
			return err
		}
		return roundTrip(b.Bytes())
	}
	growth.Linear(t, "a directory 4x as wide", 25_000, wide)
}

func TestIngestLimits(t *testing.T) {
	var wide6 bytes.Buffer
	if err := nartest.Wide(&wide6, 6); err != nil {
		t.Fatal(err)
	}
	var longName bytes.Buffer
	if err := nartest.Nested(&longName, 1, strings.Repeat("n", 11)); err != nil {
		t.Fatal(err)
	}
	deep11 := nested(t, 11)
	for _, tc := range []struct {
		name   string
		limits Limits
		nar    []byte
		limit  string
	}{
		{"depth", Limits{Limits: castore.Limits{MaxDepth: 10}}, deep11, castore.LimitDepth},
		{"entries", Limits{Limits: castore.Limits{MaxEntries: 5}}, wide6.Bytes(), castore.LimitEntries},
		{"name", Limits{Limits: castore.Limits{MaxNameLen: 10}}, longName.Bytes(), castore.LimitNameLen},
		{"NAR size", Limits{MaxNARSize: uint64(len(deep11)) - 1}, deep11, LimitNARSize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			blobs, dirs := newMemBlobs(), newCountingDirs()
			_, _, _, err := Ingest(context.Background(), bytes.NewReader(tc.nar), blobs, dirs, WithLimits(tc.limits))
			var le *castore.LimitError
			if !errors.As(err, &le) || le.Limit != tc.limit || !strings.Contains(err.Error(), tc.limit) {
				t.Fatalf("Ingest over the %s limit: %v, want a LimitError naming it", tc.limit, err)
			}
			if n := dirs.stored(); n != 0 {
				t.Errorf("%d directories stored by a refused NAR", n)
			}
			// The same NAR is fine one step under the limit.
			if _, _, _, err := Ingest(context.Background(), bytes.NewReader(tc.nar), blobs, dirs, WithLimits(raise(tc.limits))); err != nil {
				t.Errorf("Ingest at the limit: %v", err)
			}
		})
	}
}

// raise lifts every limit set in l by one.
func raise(l Limits) Limits {
	inc := func(v *int) {
		if *v > 0 {
			*v++
		}
	}
	inc(&l.MaxDepth)
	inc(&l.MaxEntries)
	inc(&l.MaxNameLen)
	if l.MaxNARSize > 0 {
		l.MaxNARSize++
	}
	return l
}

// A NAR nested a million deep is refused at the depth limit, having read
// no more than it took to get there: uploads of it never finished before.
func TestDepthLimitStopsEarly(t *testing.T) {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(nartest.Nested(pw, 1_000_000, "d")) }()
	c := &countReader{r: pr}
	_, _, _, err := Ingest(context.Background(), c, newMemBlobs(), newCountingDirs(), WithLimits(Limits{Limits: castore.DefaultLimits()}))
	pr.CloseWithError(errors.New("test done"))
	var le *castore.LimitError
	if !errors.As(err, &le) || le.Limit != castore.LimitDepth {
		t.Fatalf("Ingest of a NAR 1,000,000 deep: %v, want the depth limit", err)
	}
	if len(err.Error()) > 1000 {
		t.Errorf("error is %d bytes long; the path in it should be shortened", len(err.Error()))
	}
	if max := int64(castore.DefaultMaxDepth*168 + 128<<10); c.n > max {
		t.Errorf("read %d bytes before refusing, want at most %d", c.n, max)
	}
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}
