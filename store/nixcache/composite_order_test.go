package nixcache

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/pathinfo"
	"github.com/tvix-go/tvix/store/storev1"
)

// recording is a local store that remembers the order of its Puts.
type recording struct {
	*pathinfo.Memory
	mu   sync.Mutex
	puts []string
}

func (r *recording) Put(ctx context.Context, info *storev1.PathInfo) (*storev1.PathInfo, error) {
	r.mu.Lock()
	r.puts = append(r.puts, string(castore.NodeName(info.GetNode())))
	r.mu.Unlock()
	return r.Memory.Put(ctx, info)
}

func orderInfo(t *testing.T, basename string, refs ...string) *storev1.PathInfo {
	t.Helper()
	info := &storev1.PathInfo{
		Node: &castorev1.Node{Node: &castorev1.Node_File{File: &castorev1.FileNode{
			Name: []byte(basename), Digest: castore.HashBlob([]byte(basename)).Bytes(), Size: 1}}},
		Narinfo: &storev1.NARInfo{NarSize: 120, NarSha256: make([]byte, 32)},
	}
	for _, r := range refs {
		sp, err := storepath.FromBasename(r)
		if err != nil {
			t.Fatal(err)
		}
		info.References = append(info.References, sp.Digest[:])
		info.Narinfo.ReferenceNames = append(info.Narinfo.ReferenceNames, r)
	}
	return info
}

func digestOf(t *testing.T, basename string) [storepath.DigestSize]byte {
	sp, err := storepath.FromBasename(basename)
	if err != nil {
		t.Fatal(err)
	}
	return sp.Digest
}

// Substitution records a path's references before the path, and not the
// path at all when a reference cannot be had.
func TestSubstitutionRecordsReferencesFirst(t *testing.T) {
	ctx := context.Background()
	const (
		leaf = "00bgd045z0d4icpbc2yyz4gx48ak44la-leaf"
		mid  = "1c5b8vw40dy178xlpddw65q9gf1h2186-mid"
		top  = "2c5b8vw40dy178xlpddw65q9gf1h2186-top"
		lost = "3c5b8vw40dy178xlpddw65q9gf1h2186-lost"
		bad  = "4c5b8vw40dy178xlpddw65q9gf1h2186-bad"
	)
	upstream := pathinfo.NewMemory()
	for _, info := range []*storev1.PathInfo{
		orderInfo(t, leaf), orderInfo(t, mid, leaf, mid), orderInfo(t, top, mid, leaf),
		orderInfo(t, bad, leaf, lost),
	} {
		if _, err := upstream.Put(ctx, info); err != nil {
			t.Fatal(err)
		}
	}
	local := &recording{Memory: pathinfo.NewMemory()}
	c := &Composite{Local: local, Substituters: []pathinfo.Service{upstream}}
	if _, err := c.Get(ctx, digestOf(t, top)); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(local.puts, " "); got != leaf+" "+mid+" "+top {
		t.Fatalf("recorded in the order %s, want leaf, mid, top", got)
	}

	_, err := c.Get(ctx, digestOf(t, bad))
	if !errors.Is(err, pathinfo.ErrNotFound) || !strings.Contains(err.Error(), lost) {
		t.Fatalf("substituting a path whose reference is gone: %v, want not found naming %s", err, lost)
	}
	if _, err := local.Get(ctx, digestOf(t, bad)); err == nil {
		t.Fatal("a path was recorded though its reference could not be had")
	}
}

// A substituter whose path infos refer in a circle gives an error, not a
// hang.
func TestSubstitutionReferenceCycle(t *testing.T) {
	ctx := context.Background()
	const (
		a = "00bgd045z0d4icpbc2yyz4gx48ak44la-a"
		b = "1c5b8vw40dy178xlpddw65q9gf1h2186-b"
	)
	upstream := pathinfo.NewMemory()
	upstream.Put(ctx, orderInfo(t, a, b))
	upstream.Put(ctx, orderInfo(t, b, a))
	c := &Composite{Local: pathinfo.NewMemory(), Substituters: []pathinfo.Service{upstream}}
	done := make(chan error, 1)
	go func() { _, err := c.Get(ctx, digestOf(t, a)); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "cycle") {
			t.Fatalf("reference cycle: %v, want an error naming it", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("substituting a reference cycle hangs")
	}
}
