package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castoretest"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/internal/scaletest"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/pathinfo"
	"github.com/tvix-go/tvix/store/pathinfo/pathinfotest"
	"github.com/tvix-go/tvix/store/storev1"
)

func openDB(t testing.TB, raw string) *DB {
	t.Helper()
	db, err := Open(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestDirectoryConformance(t *testing.T) {
	castoretest.RunDirectoryService(t, func(t *testing.T) castore.DirectoryService {
		return NewDirectories(openDB(t, scaletest.PGURL(t)))
	})
}

func TestPathInfoConformance(t *testing.T) {
	pathinfotest.RunService(t, NewPathInfos(openDB(t, scaletest.PGURL(t))))
}

// Daemons starting together on a fresh schema migrate it once, and a
// database from a newer tvix is refused, not misread.
func TestMigrations(t *testing.T) {
	url := scaletest.PGURL(t)
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, err := Open(context.Background(), url)
			if err == nil {
				db.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("concurrent open: %v", err)
		}
	}
	db := openDB(t, url)
	var n int
	if err := db.pool.QueryRow(context.Background(), `SELECT count(*) FROM tvix_migrations`).Scan(&n); err != nil || n != len(migrations) {
		t.Fatalf("migrations recorded: %d, %v; want %d", n, err, len(migrations))
	}
	if _, err := db.pool.Exec(context.Background(), `INSERT INTO tvix_migrations (version) VALUES ($1)`, len(migrations)+1); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), url); err == nil || !strings.Contains(err.Error(), "this tvix knows only up to") {
		t.Fatalf("newer schema: %v", err)
	}
	if _, err := Open(context.Background(), strings.Replace(url, "schema=", "schema=Bad-", 1)); err == nil || !strings.Contains(err.Error(), "schema") {
		t.Fatalf("bad schema name: %v", err)
	}
}

// A path whose references are not recorded is refused, naming the
// reference; in a batch a reference may come later in the same batch.
func TestClosureInvariant(t *testing.T) {
	ctx := context.Background()
	s := NewPathInfos(openDB(t, scaletest.PGURL(t)))
	a := pathinfotest.SampleInfo(t, "00bgd045z0d4icpbc2yyz4gx48ak44la-a")
	b := pathinfotest.SampleInfo(t, "1c5b8vw40dy178xlpddw65q9gf1h2186-b", "00bgd045z0d4icpbc2yyz4gx48ak44la-a", "1c5b8vw40dy178xlpddw65q9gf1h2186-b")
	if _, err := s.Put(ctx, b); !errors.Is(err, pathinfo.ErrMissingReference) || !strings.Contains(err.Error(), "00bgd045z0d4icpbc2yyz4gx48ak44la-a") {
		t.Fatalf("put before its reference: %v, want ErrMissingReference naming it", err)
	}
	if err := s.PutBatch(ctx, []*storev1.PathInfo{b, a}); err != nil {
		t.Fatalf("batch with its reference later: %v", err)
	}
	c := pathinfotest.SampleInfo(t, "2c5b8vw40dy178xlpddw65q9gf1h2186-c", "3c5b8vw40dy178xlpddw65q9gf1h2186-d")
	d := pathinfotest.SampleInfo(t, "4c5b8vw40dy178xlpddw65q9gf1h2186-e")
	if err := s.PutBatch(ctx, []*storev1.PathInfo{d, c}); !errors.Is(err, pathinfo.ErrMissingReference) {
		t.Fatalf("batch missing a reference: %v", err)
	}
	sp, _ := storepath.FromBasename("4c5b8vw40dy178xlpddw65q9gf1h2186-e")
	if _, err := s.Get(ctx, sp.Digest); !errors.Is(err, pathinfo.ErrNotFound) {
		t.Fatalf("part of a refused batch was stored: %v", err)
	}
}

// NAR files nar-bridge records are kept across daemons.
func TestNARFiles(t *testing.T) {
	ctx := context.Background()
	url := scaletest.PGURL(t)
	s := NewPathInfos(openDB(t, url))
	if _, err := s.GetNARFile(ctx, "nar/x.nar"); !errors.Is(err, pathinfo.ErrNotFound) {
		t.Fatalf("unknown NAR file: %v", err)
	}
	if err := s.PutNARFile(ctx, "nar/x.nar", [20]byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	other := NewPathInfos(openDB(t, url))
	if got, err := other.GetNARFile(ctx, "nar/x.nar"); err != nil || got != [20]byte{1, 2} {
		t.Fatalf("from another daemon: %x, %v", got, err)
	}
}

// chain is a closure of n directories, each holding the next: depth n.
// putAll puts dirs (leaves first) in one PutMultiple and returns the
// root's digest.
func putAll(t *testing.T, s *Directories, dirs []*castorev1.Directory) castore.Digest {
	t.Helper()
	p := s.PutMultiple(context.Background())
	for _, d := range dirs {
		if err := p.Put(d); err != nil {
			t.Fatal(err)
		}
	}
	root, err := p.Close()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func chain(n int) []*castorev1.Directory {
	var dirs []*castorev1.Directory
	child := &castorev1.Directory{}
	dirs = append(dirs, child)
	for i := 1; i < n; i++ {
		size, _ := castore.DirectorySize(child)
		d := &castorev1.Directory{
			Directories: []*castorev1.DirectoryNode{{Name: []byte("sub"), Digest: castore.DirectoryDigest(child).Bytes(), Size: size}},
			Symlinks:    []*castorev1.SymlinkNode{{Name: []byte(fmt.Sprintf("l%d", i)), Target: []byte("x")}},
		}
		dirs = append(dirs, d)
		child = d
	}
	return dirs
}

// A deep closure comes back whole, root first, each directory after its
// parent, from one query.
func TestDeepClosure(t *testing.T) {
	ctx := context.Background()
	s := NewDirectories(openDB(t, scaletest.PGURL(t)))
	dirs := chain(300)
	root := putAll(t, s, dirs)
	i := len(dirs) - 1
	for d, err := range s.GetRecursive(ctx, root) {
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(d, dirs[i]) {
			t.Fatalf("directory %d out of order", len(dirs)-1-i)
		}
		i--
	}
	if i != -1 {
		t.Fatalf("closure gave %d of %d directories", len(dirs)-1-i, len(dirs))
	}
}

// A closure with a directory missing from the table (a broken database)
// is an error naming it, never a short closure.
func TestClosureWithMissingDirectory(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, scaletest.PGURL(t))
	s := NewDirectories(db)
	dirs := chain(3)
	p := s.PutMultiple(ctx)
	for _, d := range dirs {
		p.Put(d)
	}
	root, err := p.Close()
	if err != nil {
		t.Fatal(err)
	}
	leaf := castore.DirectoryDigest(dirs[0])
	if _, err := db.pool.Exec(ctx, `DELETE FROM directories WHERE digest = $1`, leaf[:]); err != nil {
		t.Fatal(err)
	}
	var last error
	for _, err := range s.GetRecursive(ctx, root) {
		last = err
	}
	if !errors.Is(last, castore.ErrNotFound) || !strings.Contains(last.Error(), leaf.String()) {
		t.Fatalf("closure with a missing directory: %v", last)
	}
	if _, err := db.pool.Exec(ctx, `UPDATE directories SET data = $2 WHERE digest = $1`, root[:], []byte{0x0a, 0x00}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, root); err == nil || !strings.Contains(err.Error(), "hashes to") {
		t.Fatalf("a corrupt row: %v", err)
	}
}

// Restarting PostgreSQL during traffic gives retries, never wrong
// answers, and the services go on by themselves.
func TestServerRestartDuringTraffic(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, scaletest.PGURL(t))
	infos := NewPathInfos(db)
	dirs := NewDirectories(db)
	ok, errs := scaletest.DuringRestart(t, "pg", 4, func(w, i int) error {
		d := &castorev1.Directory{Symlinks: []*castorev1.SymlinkNode{{Name: []byte(fmt.Sprintf("w%d-%d", w, i)), Target: []byte("t")}}}
		dg, err := dirs.Put(ctx, d)
		if err != nil {
			return err
		}
		got, err := dirs.Get(ctx, dg)
		if err != nil {
			return err
		}
		if !proto.Equal(got, d) {
			t.Errorf("wrong directory back for %s", dg)
		}
		sp := storepath.StorePath{Digest: [20]byte{byte(w), byte(i), byte(i >> 8)}, Name: "p"}
		_, err = infos.Put(ctx, pathinfotest.SampleInfo(t, sp.Basename()))
		return err
	})
	t.Logf("%d operations succeeded, %d failed across the restart", ok, len(errs))
	for _, err := range errs[:min(len(errs), 5)] {
		t.Errorf("an operation failed instead of retrying: %v", err)
	}
	if ok == 0 {
		t.Fatal("nothing succeeded")
	}
}
