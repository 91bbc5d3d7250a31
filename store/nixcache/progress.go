package nixcache

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
)

// Transfers counts what substitutions under a context are receiving while
// they receive it: NAR bytes as they are unpacked, and the paths being
// fetched, so a copy can show progress within a large path and name the
// paths in flight, not only count the ones done.
type Transfers struct {
	Bytes atomic.Int64 // NAR bytes unpacked so far, of finished and running paths

	mu      sync.Mutex
	running map[string]*Transfer // by store path, while fetched
}

// Transfer is one path being fetched.
type Transfer struct {
	NarSize int64
	Bytes   atomic.Int64 // unpacked so far
}

type transfersKey struct{}

// WithTransfers makes substitutions under ctx count into t.
func WithTransfers(ctx context.Context, t *Transfers) context.Context {
	return context.WithValue(ctx, transfersKey{}, t)
}

func transfersFrom(ctx context.Context) *Transfers {
	t, _ := ctx.Value(transfersKey{}).(*Transfers)
	return t
}

// Running is the paths being fetched now.
func (t *Transfers) Running() map[string]*Transfer {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]*Transfer, len(t.running))
	for p, tr := range t.running {
		out[p] = tr
	}
	return out
}

func (t *Transfers) start(path string, narSize int64) *Transfer {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.running == nil {
		t.running = map[string]*Transfer{}
	}
	tr := &Transfer{NarSize: narSize}
	t.running[path] = tr
	return tr
}

func (t *Transfers) end(path string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.running, path)
}

// countingReader adds what is read to the total and to its path's count.
type countingReader struct {
	r    io.Reader
	all  *Transfers
	path *Transfer
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.all.Bytes.Add(int64(n))
	c.path.Bytes.Add(int64(n))
	return n, err
}
