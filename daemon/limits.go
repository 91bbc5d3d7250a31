package daemon

import (
	"fmt"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/store/narcastore"
)

// Limits bound what clients may upload, through nar-bridge (PUT) and the
// gRPC directory service (Put): a crafted tree could otherwise make every
// later walk of it expensive. Each field: 0 means the default, negative
// means no limit. docs/trust.md says why the defaults are what they are.
type Limits struct {
	// MaxDepth bounds directory nesting (default castore.DefaultMaxDepth).
	MaxDepth int
	// MaxEntries bounds the entries of one directory (default
	// castore.DefaultMaxEntries).
	MaxEntries int
	// MaxNameLen bounds an entry name in bytes (default and most 255).
	MaxNameLen int
	// MaxNARSize bounds an uploaded NAR, uncompressed (default 64 GiB).
	MaxNARSize int64
	// MaxNarinfoSize bounds an uploaded narinfo (default 2 MiB).
	MaxNarinfoSize int64
}

// Defaults the zero Limits stand for.
const (
	DefaultMaxNARSize     = 64 << 30
	DefaultMaxNarinfoSize = 2 << 20
)

// pick is the limit a field says: def for 0, none (0) for negative.
func pick[T int | int64](v, def T) T {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

// resolve checks the limits and fills in the defaults.
func (l Limits) resolve() (narcastore.Limits, int64, error) {
	if l.MaxNameLen > castore.MaxNameLen {
		return narcastore.Limits{}, 0, fmt.Errorf("--%s %d: names cannot be longer than %d bytes anyway", castore.LimitNameLen, l.MaxNameLen, castore.MaxNameLen)
	}
	out := narcastore.Limits{
		Limits: castore.Limits{
			MaxDepth:   pick(l.MaxDepth, castore.DefaultMaxDepth),
			MaxEntries: pick(l.MaxEntries, castore.DefaultMaxEntries),
			MaxNameLen: pick(l.MaxNameLen, castore.MaxNameLen),
		},
		MaxNARSize: uint64(pick(l.MaxNARSize, DefaultMaxNARSize)),
	}
	// A narinfo has no "no limit": it is read into memory whole.
	narinfo := pick(l.MaxNarinfoSize, DefaultMaxNarinfoSize)
	if narinfo == 0 {
		narinfo = 1 << 62
	}
	return out, narinfo, nil
}
