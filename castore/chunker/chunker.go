// Package chunker finds content-defined chunk boundaries with FastCDC
// (Xia et al., USENIX ATC '16: gear rolling hash, normalized chunking), so an
// edit in a file moves only the boundaries next to it and the other chunks
// deduplicate against the old version.
//
// We do not use github.com/jotfs/fastcdc-go: its NewChunker XORs the seed
// into a package-global table on every call, a data race as soon as two
// blobs are written at once, and it is pull-based (an io.Reader) where our
// blob writers are push-based (io.Writer).
package chunker

import "fmt"

// Params are the chunk size bounds in bytes.
type Params struct {
	Min, Avg, Max int
}

// Default sizes, picked by measuring deduplication on successive versions
// of real files (docs/benchmarks.md): 64 KiB / 256 KiB / 1 MiB.
var Default = Params{Min: 64 << 10, Avg: 256 << 10, Max: 1 << 20}

// Chunker holds the masks derived from Params; it is stateless per call and
// safe for concurrent use.
type Chunker struct {
	p            Params
	maskS, maskL uint64
}

// New checks p and derives FastCDC's two masks (normalization level 2).
func New(p Params) (*Chunker, error) {
	if p.Min < 64 || p.Min >= p.Avg || p.Avg >= p.Max {
		return nil, fmt.Errorf("chunker: want 64 <= min < avg < max, got %d/%d/%d", p.Min, p.Avg, p.Max)
	}
	bits := 0
	for 1<<(bits+1) <= p.Avg {
		bits++
	}
	const norm = 2
	return &Chunker{p: p, maskS: 1<<(bits+norm) - 1, maskL: 1<<(bits-norm) - 1}, nil
}

// MustNew is New for the compiled-in defaults.
func MustNew(p Params) *Chunker {
	c, err := New(p)
	if err != nil {
		panic(err)
	}
	return c
}

// Params returns the sizes this chunker cuts with.
func (c *Chunker) Params() Params { return c.p }

// Cut returns the length of the chunk starting at data[0]. The answer is
// final when len(data) >= Max or when data is the end of the stream; with
// less data and more to come, call again once more has arrived.
func (c *Chunker) Cut(data []byte) int {
	n := len(data)
	if n <= c.p.Min {
		return n
	}
	if n > c.p.Max {
		n = c.p.Max
	}
	normal := c.p.Avg
	if normal > n {
		normal = n
	}
	var fp uint64
	// Ranging over subslices lets the compiler drop bounds checks: this loop
	// is where chunking spends its time.
	for i, b := range data[c.p.Min:normal] {
		fp = fp<<1 + gear[b]
		if fp&c.maskS == 0 {
			return c.p.Min + i + 1
		}
	}
	start := max(c.p.Min, normal)
	for i, b := range data[start:n] {
		fp = fp<<1 + gear[b]
		if fp&c.maskL == 0 {
			return start + i + 1
		}
	}
	return n
}

// gear is a fixed table of 256 pseudo-random words (splitmix64 from a fixed
// seed). It must never change: boundaries, and so deduplication against
// already stored chunks, depend on it.
var gear = func() (t [256]uint64) {
	x := uint64(0x7476697867) // "tvixg"
	for i := range t {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		t[i] = z ^ z>>31
	}
	return t
}()
