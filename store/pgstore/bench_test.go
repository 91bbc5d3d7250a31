package pgstore

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/castore/dirstore"
	"github.com/tvix-go/tvix/internal/scaletest"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/pathinfo"
	"github.com/tvix-go/tvix/store/pathinfo/pathinfotest"
)

// TestMetadataThroughput is scripts/bench-scale's metadata figure:
// TVIX_BENCH_META_OPS path-info puts, gets and directory closure walks
// (8 at a time) on PostgreSQL beside the embedded bbolt default. It only
// runs when asked.
func TestMetadataThroughput(t *testing.T) {
	ops := scaletest.Asked(t, "TVIX_BENCH_META_OPS")
	db := openDB(t, scaletest.PGURL(t))
	boltPI, err := pathinfo.NewBolt(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer boltPI.Close()
	boltDirs, err := dirstore.NewBolt(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer boltDirs.Close()
	for _, tc := range []struct {
		name  string
		infos pathinfo.Service
		dirs  castore.DirectoryService
	}{{"postgres", NewPathInfos(db), NewDirectories(db)}, {"bbolt", boltPI, boltDirs}} {
		ctx := context.Background()
		names := make([]string, ops)
		for i := range names {
			names[i] = storepath.StorePath{Digest: [20]byte{byte(i), byte(i >> 8), byte(i >> 16), 7}, Name: "p"}.Basename()
		}
		put := rate(ops, func(i int) error { _, err := tc.infos.Put(ctx, pathinfotest.SampleInfo(t, names[i])); return err }, t)
		get := rate(ops, func(i int) error {
			sp, _ := storepath.FromBasename(names[i])
			_, err := tc.infos.Get(ctx, sp.Digest)
			return err
		}, t)
		// A closure of 40 directories, 4 levels deep.
		root := putTree(t, tc.dirs)
		walk := rate(ops/10, func(int) error {
			n := 0
			for _, err := range tc.dirs.GetRecursive(ctx, root) {
				if err != nil {
					return err
				}
				n++
			}
			if n != 40 {
				return fmt.Errorf("closure of %d", n)
			}
			return nil
		}, t)
		fmt.Printf("metadata %s: path-info put %.0f/s, get %.0f/s, closure of 40 directories %.0f/s\n", tc.name, put, get, walk)
	}
}

// rate is n calls of op, 8 at a time, per second.
func rate(n int, op func(i int) error, t *testing.T) float64 {
	return float64(n) / scaletest.Parallel(t, n, 8, op).Seconds()
}

// putTree stores 1 + 3 + 9 + 27 directories and returns the root.
func putTree(t *testing.T, s castore.DirectoryService) castore.Digest {
	p := s.PutMultiple(context.Background())
	var level func(depth, id int) *castorev1.DirectoryNode
	level = func(depth, id int) *castorev1.DirectoryNode {
		d := &castorev1.Directory{Symlinks: []*castorev1.SymlinkNode{{Name: []byte("id"), Target: []byte(fmt.Sprint(id))}}}
		if depth < 3 {
			for k := range 3 {
				d.Directories = append(d.Directories, level(depth+1, id*3+k+1))
				d.Directories[k].Name = []byte(fmt.Sprint("d", k))
			}
		}
		if err := p.Put(d); err != nil {
			t.Fatal(err)
		}
		size, _ := castore.DirectorySize(d)
		return &castorev1.DirectoryNode{Digest: castore.DirectoryDigest(d).Bytes(), Size: size}
	}
	level(0, 0)
	root, err := p.Close()
	if err != nil {
		t.Fatal(err)
	}
	return root
}
