package storefs_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"iter"
	"testing"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
	tvixfs "github.com/tvix-go/tvix/castore/fs"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/pathinfo"
	"github.com/tvix-go/tvix/store/storefs"
	"github.com/tvix-go/tvix/store/storev1"
)

var _ tvixfs.RootNodes = (*storefs.RootNodes)(nil)

func storePath(name string) storepath.StorePath {
	h := sha256.Sum256([]byte("tvix-go storefs test " + name))
	var sp storepath.StorePath
	copy(sp.Digest[:], h[:])
	sp.Name = name
	return sp
}

func fileNode(name string) *castorev1.Node {
	return &castorev1.Node{Node: &castorev1.Node_File{File: &castorev1.FileNode{Name: []byte(name), Digest: make([]byte, 32), Size: 1}}}
}

func info(n *castorev1.Node) *storev1.PathInfo {
	return &storev1.PathInfo{Node: n, Narinfo: &storev1.NARInfo{NarSize: 1, NarSha256: make([]byte, 32)}}
}

// counting counts Gets and can fail them or hand out canned path infos.
type counting struct {
	storefs.PathInfoService
	gets  int
	fail  error
	infos []*storev1.PathInfo
}

func (c *counting) Get(ctx context.Context, d [storepath.DigestSize]byte) (*storev1.PathInfo, error) {
	c.gets++
	if c.fail != nil {
		return nil, c.fail
	}
	for _, i := range c.infos {
		if sp, err := storepath.FromBasename(string(castore.NodeName(i.GetNode()))); err == nil && sp.Digest == d {
			return i, nil
		}
	}
	return c.PathInfoService.Get(ctx, d)
}

func (c *counting) List(ctx context.Context) iter.Seq2[*storev1.PathInfo, error] {
	if c.fail != nil {
		return func(yield func(*storev1.PathInfo, error) bool) { yield(nil, c.fail) }
	}
	return func(yield func(*storev1.PathInfo, error) bool) {
		for _, i := range c.infos {
			if !yield(i, nil) {
				return
			}
		}
		for i, err := range c.PathInfoService.List(ctx) {
			if !yield(i, err) {
				return
			}
		}
	}
}

func TestGet(t *testing.T) {
	ctx := context.Background()
	mem := pathinfo.NewMemory()
	sp := storePath("hello")
	if _, err := mem.Put(ctx, info(fileNode(sp.Basename()))); err != nil {
		t.Fatal(err)
	}
	svc := &counting{PathInfoService: mem}
	r := storefs.New(svc, nil)

	n, err := r.Get(ctx, sp.Basename())
	if err != nil || string(castore.NodeName(n)) != sp.Basename() || n.GetFile() == nil {
		t.Fatalf("Get(%s) = %v, %v", sp.Basename(), n, err)
	}

	for _, name := range []string{"x", "not-a-store-path", sp.Basename()[:32] + "-bad/name", ""} {
		if _, err := r.Get(ctx, name); !errors.Is(err, castore.ErrNotFound) {
			t.Errorf("Get(%q) = %v, want ErrNotFound", name, err)
		}
	}
	if svc.gets != 1 {
		t.Errorf("%d service calls, want 1: names that are no store path need none", svc.gets)
	}

	// Same digest, other name: another path, which does not exist.
	if _, err := r.Get(ctx, sp.Basename()[:33]+"other-name"); !errors.Is(err, castore.ErrNotFound) {
		t.Errorf("Get of a different name with the same digest: %v, want ErrNotFound", err)
	}
	if _, err := r.Get(ctx, storePath("unknown").Basename()); !errors.Is(err, castore.ErrNotFound) {
		t.Errorf("Get of an unknown path: %v, want ErrNotFound", err)
	}

	down := errors.New("backend down")
	svc.fail = down
	if _, err := r.Get(ctx, sp.Basename()); !errors.Is(err, down) || errors.Is(err, castore.ErrNotFound) {
		t.Errorf("Get with a failing service: %v, want the service's error and not ErrNotFound", err)
	}

	// A node the service should never have stored is an error, not absence.
	svc.fail = nil
	bad := storePath("bad-node")
	svc.infos = []*storev1.PathInfo{info(&castorev1.Node{Node: &castorev1.Node_File{File: &castorev1.FileNode{Name: []byte(bad.Basename()), Digest: []byte("short")}}})}
	if _, err := r.Get(ctx, bad.Basename()); err == nil || errors.Is(err, castore.ErrNotFound) {
		t.Errorf("Get of an invalid node: %v, want an error other than ErrNotFound", err)
	}
}

func TestList(t *testing.T) {
	ctx := context.Background()
	mem := pathinfo.NewMemory()
	var want []string
	for _, name := range []string{"a", "b"} {
		sp := storePath(name)
		want = append(want, sp.Basename())
		if _, err := mem.Put(ctx, info(fileNode(sp.Basename()))); err != nil {
			t.Fatal(err)
		}
	}
	// A remote service's listing is not validated; these cannot be found
	// by Get, so they are not listed.
	svc := &counting{PathInfoService: mem, infos: []*storev1.PathInfo{info(fileNode("no-store-path")), {}}}
	got := map[string]bool{}
	for n, err := range storefs.New(svc, nil).List(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		got[string(castore.NodeName(n))] = true
	}
	if len(got) != len(want) || !got[want[0]] || !got[want[1]] {
		t.Errorf("listed %v, want %v", got, want)
	}

	down := errors.New("backend down")
	svc.fail = down
	var errs []error
	for _, err := range storefs.New(svc, nil).List(ctx) {
		errs = append(errs, err)
	}
	if len(errs) != 1 || !errors.Is(errs[0], down) {
		t.Errorf("List with a failing service yielded errors %v, want one wrapping %v", errs, down)
	}
}
