package fs

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castoretest"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/internal/growth"
	"github.com/tvix-go/tvix/store/storev1"
)

// addNested stores a tree depth directories deep under a store path of its
// own and returns the path's basename.
func (s *testStore) addNested(t testing.TB, depth int, name string) string {
	t.Helper()
	ctx := context.Background()
	closure := castoretest.Nested(depth, name)
	p := s.dirs.PutMultiple(ctx)
	for _, d := range closure {
		if err := p.Put(d); err != nil {
			t.Fatal(err)
		}
	}
	root, err := p.Close()
	if err != nil {
		t.Fatal(err)
	}
	size, _ := castore.DirectorySize(closure[len(closure)-1])
	sp := fakeStorePath(fmt.Sprintf("nested-%d-%s", depth, name))
	node := &castorev1.Node{Node: &castorev1.Node_Directory{Directory: &castorev1.DirectoryNode{
		Name: []byte(sp.Basename()), Digest: root.Bytes(), Size: size}}}
	if _, err := s.paths.Put(ctx, &storev1.PathInfo{Node: node, Narinfo: &storev1.NARInfo{NarSize: 1, NarSha256: make([]byte, 32)}}); err != nil {
		t.Fatal(err)
	}
	return sp.Basename()
}

// The mount walks a tree 100,000 deep to its bottom, with memory linear
// in the depth (each level is one lookup of one cached directory).
func TestMountDeepNesting(t *testing.T) {
	s := newTestStore()
	if _, err := castoretest.PutBlob(t, s.blobs, nil, 1); err != nil {
		t.Fatal(err)
	}
	const depth = 100_000
	deep := s.addNested(t, depth, "d")
	small, big := s.addNested(t, 10_000, "e"), s.addNested(t, 40_000, "e")
	m := s.mount(t, Options{})
	if err := castoretest.WalkNested(filepath.Join(m.Mountpoint(), deep), depth, "d"); err != nil {
		t.Fatal(err)
	}
	growth.Linear(t, "walking a tree 4x as deep", 10_000, func(n int) error {
		p := small
		if n > 10_000 {
			p = big
		}
		return castoretest.WalkNested(filepath.Join(m.Mountpoint(), p), n, "e")
	})
}
