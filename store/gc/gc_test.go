package gc

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/blobstore"
	"github.com/tvix-go/tvix/castore/castoretest"
	"github.com/tvix-go/tvix/castore/dirstore"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/closure"
	"github.com/tvix-go/tvix/store/importer"
	"github.com/tvix-go/tvix/store/pathinfo"
)

// testStore is an embedded store on disk: packs, one bbolt file.
type testStore struct {
	root  string
	blobs *blobstore.Store
	dirs  *dirstore.Bolt
	infos *pathinfo.Bolt
	roots *Roots
	c     *Collector
}

func openTestStore(t *testing.T, root string) *testStore {
	t.Helper()
	blobs, err := blobstore.NewPack(filepath.Join(root, "packs"))
	if err != nil {
		t.Fatal(err)
	}
	dirs, err := dirstore.NewBolt(filepath.Join(root, "db.bolt"))
	if err != nil {
		t.Fatal(err)
	}
	infos, err := pathinfo.NewBolt(filepath.Join(root, "db.bolt"))
	if err != nil {
		t.Fatal(err)
	}
	s := &testStore{root: root, blobs: blobs, dirs: dirs, infos: infos, roots: NewRoots(filepath.Join(root, "gcroots"))}
	s.c = &Collector{Blobs: blobs, Dirs: dirs, PathInfos: infos, Roots: s.roots, Access: NewAccessLog(infos)}
	t.Cleanup(func() { s.close() })
	return s
}

func (s *testStore) close() {
	s.blobs.Close()
	s.dirs.Close()
	s.infos.Close()
}

// add imports a tree of files (name → contents); refs are scanned for.
func (s *testStore) add(t *testing.T, name string, files map[string][]byte, refs ...storepath.StorePath) storepath.StorePath {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	for f, data := range files {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sp, _, err := importer.Store{Blobs: s.blobs, Dirs: s.dirs, PathInfo: s.infos}.AddRecursive(context.Background(), dir, name, refs...)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

func random(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// putOrphan stores a blob nothing names.
func (s *testStore) putOrphan(t *testing.T, data []byte) castore.Digest {
	t.Helper()
	d, err := castoretest.PutBlob(t, s.blobs, data, len(data)+1)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// verify checks every path's contents against its NAR hash.
func (s *testStore) verify(t *testing.T) closure.VerifyReport {
	t.Helper()
	var problems []string
	rep, err := closure.Verify(context.Background(), closure.Store{Blobs: s.blobs, Dirs: s.dirs, PathInfos: s.infos}, true, func(m string) { problems = append(problems, m) })
	if err != nil {
		t.Fatal(err)
	}
	if rep.Problems > 0 {
		t.Fatalf("verify: %d problems: %s", rep.Problems, strings.Join(problems, "; "))
	}
	return rep
}

func (s *testStore) has(t *testing.T, sp storepath.StorePath) bool {
	t.Helper()
	_, err := s.infos.Get(context.Background(), sp.Digest)
	if err != nil && !errors.Is(err, pathinfo.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

func packBytes(t *testing.T, root string) int64 {
	t.Helper()
	var n int64
	entries, err := os.ReadDir(filepath.Join(root, "packs", "packs"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

var noGrace = Options{Grace: -1}

func TestDefaultKeepsEveryPathAndFreesOrphans(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	ctx := context.Background()
	lib := s.add(t, "lib", map[string][]byte{"a.so": random(t, 3<<20), "b": []byte("small")})
	app := s.add(t, "app", map[string][]byte{"bin/app": []byte("uses " + lib.String())}, lib)
	live := packBytes(t, s.root)
	orphan := s.putOrphan(t, random(t, 5<<20))
	small := s.putOrphan(t, []byte("tiny orphan"))
	if packBytes(t, s.root) < live+5<<20 {
		t.Fatal("orphan not stored")
	}
	dry, err := s.c.Collect(ctx, Options{Grace: -1, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(dry.Deleted) != 0 || len(dry.Live) != 2 || dry.Castore.Chunks < 2 || dry.Castore.BytesFreed < 5<<20 {
		t.Fatalf("dry run: %+v", dry)
	}
	rep, err := s.c.Collect(ctx, noGrace)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Deleted) != 0 || rep.Castore.Blobs != 1 || rep.Castore.Chunks < 2 || rep.Castore.BytesFreed < 5<<20 {
		t.Fatalf("report: %+v", rep)
	}
	for _, d := range []castore.Digest{orphan, small} {
		if ok, _ := s.blobs.Has(ctx, d); ok {
			t.Errorf("orphan %s still there", d)
		}
	}
	if got := packBytes(t, s.root); got > live+int64(len("tiny orphan")) {
		t.Errorf("packs hold %d bytes after gc, live size %d", got, live)
	}
	if !s.has(t, lib) || !s.has(t, app) {
		t.Fatal("a path went")
	}
	s.verify(t)
	// A second collection finds nothing.
	again, err := s.c.Collect(ctx, noGrace)
	if err != nil {
		t.Fatal(err)
	}
	if again.Castore.Chunks != 0 || again.Castore.BytesFreed != 0 {
		t.Errorf("second collection: %+v", again)
	}
}

func TestRootsKeepOnlyTheirClosures(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	ctx := context.Background()
	lib := s.add(t, "lib", map[string][]byte{"x": random(t, 1<<20)})
	app := s.add(t, "app", map[string][]byte{"y": []byte(lib.String())}, lib)
	other := s.add(t, "other", map[string][]byte{"z": random(t, 2<<20)})
	held := s.add(t, "held", map[string][]byte{"w": []byte("temporary")})
	rootsFile := filepath.Join(t.TempDir(), "roots")
	if err := os.WriteFile(rootsFile, []byte("# roots\n"+app.String()+"/bin/ignored\n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sess := s.roots.NewSession()
	if err := sess.AddTempRoot(held); err != nil {
		t.Fatal(err)
	}
	rep, err := s.c.Collect(ctx, Options{RootsFrom: []string{rootsFile}, Grace: -1})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Deleted) != 1 || rep.Deleted[0] != other || rep.DeletedNARBytes == 0 {
		t.Fatalf("deleted %v, want only %s", rep.Deleted, other)
	}
	if !s.has(t, app) || !s.has(t, lib) || !s.has(t, held) || s.has(t, other) {
		t.Fatal("wrong paths kept")
	}
	sess.Release()
	if err := sess.AddTempRoot(held); err == nil {
		t.Error("a released session took a root")
	}
	// Without the session, held goes; a directory of symlinks works as the roots.
	rootsDir := t.TempDir()
	if err := os.Symlink(app.String(), filepath.Join(rootsDir, "result")); err != nil {
		t.Fatal(err)
	}
	rep, err = s.c.Collect(ctx, Options{RootsFrom: []string{rootsDir}, Grace: -1})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Deleted) != 1 || rep.Deleted[0] != held {
		t.Fatalf("deleted %v, want %s", rep.Deleted, held)
	}
	s.verify(t)
}

func TestIndirectRoots(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	ctx := context.Background()
	a := s.add(t, "a", map[string][]byte{"f": []byte("a")})
	b := s.add(t, "b", map[string][]byte{"f": []byte("b")})
	link := filepath.Join(t.TempDir(), "result")
	if err := os.Symlink(a.String(), link); err != nil {
		t.Fatal(err)
	}
	if err := s.roots.AddIndirectRoot(link); err != nil {
		t.Fatal(err)
	}
	// A direct root too, as /nix/var/nix/gcroots/profiles would hold.
	if err := os.Symlink(b.String(), filepath.Join(s.roots.Dir, "direct")); err != nil {
		t.Fatal(err)
	}
	found, err := s.roots.FindRoots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 2 || found[link] != a || found[filepath.Join(s.roots.Dir, "direct")] != b {
		t.Fatalf("FindRoots = %v", found)
	}
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	rep, err := s.c.Collect(ctx, Options{GCRoots: true, Grace: -1})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Deleted) != 1 || rep.Deleted[0] != a {
		t.Fatalf("deleted %v, want %s", rep.Deleted, a)
	}
	entries, _ := os.ReadDir(filepath.Join(s.roots.Dir, "auto"))
	if len(entries) != 0 {
		t.Errorf("stale indirect root record kept: %v", entries)
	}
}

func TestDeleteSpecificPaths(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	ctx := context.Background()
	lib := s.add(t, "lib", map[string][]byte{"x": random(t, 1<<20)})
	app := s.add(t, "app", map[string][]byte{"y": []byte(lib.String())}, lib)
	_, err := s.c.Collect(ctx, Options{Delete: []storepath.StorePath{lib}, Grace: -1})
	if !errors.Is(err, ErrAlive) || !strings.Contains(err.Error(), app.String()) {
		t.Fatalf("deleting a referenced path: %v", err)
	}
	if !s.has(t, lib) {
		t.Fatal("refused delete deleted")
	}
	rep, err := s.c.Collect(ctx, Options{Delete: []storepath.StorePath{app, lib}, Grace: -1, DryRun: true})
	if err != nil || len(rep.Deleted) != 2 || !s.has(t, app) {
		t.Fatalf("dry run: %v %v", rep, err)
	}
	rep, err = s.c.Collect(ctx, Options{Delete: []storepath.StorePath{app}, Grace: -1})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Deleted) != 1 || s.has(t, app) || !s.has(t, lib) {
		t.Fatalf("delete app: %v", rep.Deleted)
	}
	s.verify(t)
}

func TestMaxFreedDeletesReferrersFirst(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	ctx := context.Background()
	base := s.add(t, "base", map[string][]byte{"x": random(t, 1<<20)})
	mid := s.add(t, "mid", map[string][]byte{"y": append([]byte(base.String()), random(t, 1<<20)...)}, base)
	top := s.add(t, "top", map[string][]byte{"z": append([]byte(mid.String()), random(t, 1<<20)...)}, mid)
	keep := s.add(t, "keep", map[string][]byte{"k": []byte("k")})
	roots := filepath.Join(t.TempDir(), "roots")
	os.WriteFile(roots, []byte(keep.String()+"\n"), 0o644)
	rep, err := s.c.Collect(ctx, Options{RootsFrom: []string{roots}, MaxFreed: 1, Grace: -1})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Deleted) != 1 || rep.Deleted[0] != top || !s.has(t, mid) || !s.has(t, base) {
		t.Fatalf("max-freed 1 deleted %v, want %s only", rep.Deleted, top)
	}
	s.verify(t)
}

func TestMaxSizeEvictsLeastRecentlyUsedClosures(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	s.c.Access.now = func() time.Time { return now }
	shared := s.add(t, "shared", map[string][]byte{"s": random(t, 1<<20)})
	oldApp := s.add(t, "old-app", map[string][]byte{"a": append([]byte(shared.String()), random(t, 1<<20)...)}, shared)
	newApp := s.add(t, "new-app", map[string][]byte{"b": append([]byte(shared.String()), random(t, 1<<20)...)}, shared)
	lone := s.add(t, "lone", map[string][]byte{"c": random(t, 1<<20)})
	for i, p := range []storepath.StorePath{shared, oldApp, lone, newApp} {
		now = now.Add(time.Duration(i+1) * time.Hour)
		s.c.Access.Touch(p.Digest)
	}
	infos := map[storepath.StorePath]uint64{}
	var total uint64
	for _, p := range []storepath.StorePath{shared, oldApp, newApp, lone} {
		info, err := s.infos.Get(ctx, p.Digest)
		if err != nil {
			t.Fatal(err)
		}
		infos[p] = info.GetNarinfo().GetNarSize()
		total += infos[p]
	}
	// Room for all but about one path: old-app goes first (shared was used
	// last through new-app, which refers to it).
	rep, err := s.c.Collect(ctx, Options{MaxSize: total - infos[oldApp]/2, Grace: -1})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Deleted) != 1 || rep.Deleted[0] != oldApp {
		t.Fatalf("evicted %v, want %s", rep.Deleted, oldApp)
	}
	// Room for one path of the closure of new-app: nothing of it may go
	// but whole, so lone (older) goes, then new-app before shared.
	rep, err = s.c.Collect(ctx, Options{MaxSize: infos[shared] + infos[newApp] + 1, Grace: -1})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Deleted) != 1 || rep.Deleted[0] != lone {
		t.Fatalf("evicted %v, want %s", rep.Deleted, lone)
	}
	rep, err = s.c.Collect(ctx, Options{MaxSize: infos[shared], Grace: -1})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Deleted) != 1 || rep.Deleted[0] != newApp || !s.has(t, shared) {
		t.Fatalf("evicted %v, want %s", rep.Deleted, newApp)
	}
	s.verify(t)
}

// An upload that found a blob with Has (and so did not send it) keeps it
// until its session ends; within the grace period it is kept anyway.
func TestTouchedBlobsSurviveUntilTheSessionEnds(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	ctx := context.Background()
	orphan := s.putOrphan(t, random(t, 2<<20))
	rep, err := s.c.Collect(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Castore.Chunks != 0 || rep.Castore.Kept == 0 {
		t.Fatalf("a blob written within the grace period went: %+v", rep)
	}
	time.Sleep(2 * time.Millisecond)
	sess := s.roots.NewSession()
	if ok, _ := s.blobs.Has(ctx, orphan); !ok {
		t.Fatal("orphan not found")
	}
	time.Sleep(2 * time.Millisecond)
	if rep, err = s.c.Collect(ctx, noGrace); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.blobs.Has(ctx, orphan); !ok || rep.Castore.Kept == 0 {
		t.Fatalf("a blob an open session found went: %+v", rep)
	}
	sess.Release()
	time.Sleep(2 * time.Millisecond)
	if rep, err = s.c.Collect(ctx, noGrace); err != nil {
		t.Fatal(err)
	}
	if rep.Castore.Blobs != 1 {
		t.Fatalf("after the session: %+v", rep)
	}
	if ok, _ := s.blobs.Has(ctx, orphan); ok {
		t.Fatal("orphan kept after its session ended")
	}
}

// A reader that opened a blob before it became garbage reads it to the
// end; compaction moves chunks under open readers.
func TestReadersFinishWhileCollected(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	ctx := context.Background()
	data := random(t, 4<<20)
	d := s.putOrphan(t, data)
	r, err := s.blobs.Open(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	half := make([]byte, len(data)/2)
	if _, err := io.ReadFull(r, half); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond)
	if _, err := s.c.Collect(ctx, noGrace); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(append(half, rest...), data) {
		t.Fatal("read back other bytes")
	}
	r.Close()
	time.Sleep(2 * time.Millisecond)
	if _, err := s.c.Collect(ctx, noGrace); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.blobs.Has(ctx, d); ok {
		t.Fatal("kept after the reader closed")
	}
}

func TestCompactionKeepsLiveChunksReadable(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	ctx := context.Background()
	// Many small files share one pack; most of them become garbage.
	files := map[string][]byte{}
	for i := range 30 {
		files[string(rune('a'+i%26))+strings.Repeat("x", i/26)] = random(t, 32<<10)
	}
	keep := s.add(t, "keep", map[string][]byte{"k1": random(t, 32<<10), "k2": random(t, 32<<10)})
	gone := s.add(t, "gone", files)
	roots := filepath.Join(t.TempDir(), "roots")
	os.WriteFile(roots, []byte(keep.String()+"\n"), 0o644)
	before := packBytes(t, s.root)
	info, _ := s.infos.Get(ctx, keep.Digest)
	_ = info
	rep, err := s.c.Collect(ctx, Options{RootsFrom: []string{roots}, Grace: -1})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Deleted) != 1 || rep.Deleted[0] != gone || rep.Castore.FilesCompacted == 0 && rep.Castore.FilesRemoved == 0 {
		t.Fatalf("report: %+v", rep)
	}
	after := packBytes(t, s.root)
	if after > before/3 {
		t.Errorf("packs: %d bytes before, %d after", before, after)
	}
	s.verify(t)
}

// Uploads (with dedup against garbage), reads and collections at once:
// afterwards every recorded path is whole.
func TestCollectWhileImportingAndReading(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	shared := random(t, 300<<10) // garbage every import deduplicates against
	s.putOrphan(t, shared)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var imported []storepath.StorePath
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil && i < 15; i++ {
				sess := s.roots.NewSession()
				sp := s.add(t, "p"+string(rune('a'+w))+string(rune('a'+i)), map[string][]byte{"shared": shared, "own": random(t, 100<<10), "big": append(append([]byte{}, shared...), random(t, 600<<10)...)})
				sess.AddTempRoot(sp)
				mu.Lock()
				imported = append(imported, sp)
				mu.Unlock()
				sess.Release()
			}
		}()
	}
	wg.Add(1)
	go func() { // a reader of everything recorded
		defer wg.Done()
		for ctx.Err() == nil {
			for info, err := range s.infos.List(ctx) {
				if err != nil {
					return
				}
				if err := castore.ForEachFile(ctx, s.dirs, castore.RenameNode(info.GetNode(), nil), func(d castore.Digest, _ uint64) error {
					r, err := s.blobs.Open(ctx, d)
					if err != nil {
						return err
					}
					defer r.Close()
					_, err = io.Copy(io.Discard, r)
					return err
				}); err != nil && ctx.Err() == nil {
					t.Errorf("read during gc: %v", err)
					return
				}
			}
		}
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 25 {
			if _, err := s.c.Collect(ctx, Options{Grace: -1, CompactBelow: 0.9}); err != nil {
				t.Errorf("collect: %v", err)
				return
			}
		}
	}()
	<-done
	cancel()
	wg.Wait()
	s.verify(t)
	if len(imported) == 0 {
		t.Fatal("nothing imported")
	}
	for _, sp := range imported {
		if !s.has(t, sp) {
			t.Errorf("%s went", sp)
		}
	}
}

// The memory services collect too (memory:// stores, tests).
func TestMemoryStoresCollect(t *testing.T) {
	ctx := context.Background()
	blobs, dirs, infos := blobstore.NewMemory(), dirstore.NewMemory(), pathinfo.NewMemory()
	defer blobs.Close()
	st := importer.Store{Blobs: blobs, Dirs: dirs, PathInfo: infos}
	src := t.TempDir()
	for _, n := range []string{"keep", "gone"} {
		os.MkdirAll(filepath.Join(src, n, "sub"), 0o755)
		os.WriteFile(filepath.Join(src, n, "sub", "f"), random(t, 700<<10), 0o644)
	}
	keep, _, err := st.AddRecursive(ctx, filepath.Join(src, "keep"), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.AddRecursive(ctx, filepath.Join(src, "gone"), ""); err != nil {
		t.Fatal(err)
	}
	roots := filepath.Join(t.TempDir(), "roots")
	os.WriteFile(roots, []byte(keep.String()+"\n"), 0o644)
	c := &Collector{Blobs: blobs, Dirs: dirs, PathInfos: infos}
	rep, err := c.Collect(ctx, Options{RootsFrom: []string{roots}, Grace: -1})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Deleted) != 1 || rep.Castore.Directories != 2 || rep.Castore.Chunks == 0 || rep.Castore.BytesFreed < 700<<10 {
		t.Fatalf("report: %+v", rep)
	}
	var problems []string
	vr, err := closure.Verify(ctx, closure.Store{Blobs: blobs, Dirs: dirs, PathInfos: infos}, true, func(m string) { problems = append(problems, m) })
	if err != nil || vr.Problems > 0 || vr.Paths != 1 {
		t.Fatalf("verify: %v %v %v", vr, err, problems)
	}
}

// The object-store layout collects by file times, which every process
// sharing the directory sees: a second store on the same directory (as a
// second daemon would be) that finds a blob with Has keeps it from the
// first one's sweep.
func TestObjectStoreSharedByTwoProcesses(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	open := func() (*blobstore.Store, *Collector) {
		blobs, err := blobstore.NewFile(filepath.Join(root, "blobs"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { blobs.Close() })
		return blobs, &Collector{Blobs: blobs, Dirs: dirstore.NewMemory(), PathInfos: pathinfo.NewMemory()}
	}
	a, collectA := open()
	b, _ := open()
	big, err := castoretest.PutBlob(t, a, random(t, 3<<20), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	small, err := castoretest.PutBlob(t, a, []byte("small"), 5)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	epoch := time.Now()
	time.Sleep(20 * time.Millisecond)
	if ok, _ := b.Has(ctx, big); !ok {
		t.Fatal("b does not see the blob")
	}
	rep, err := collectA.Collect(ctx, Options{Grace: time.Since(epoch)})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Castore.Chunks != 1 || rep.Castore.Blobs != 0 || rep.Castore.Kept == 0 {
		t.Fatalf("report: %+v", rep)
	}
	if ok, _ := a.Has(ctx, small); ok {
		t.Error("the untouched blob is still there")
	}
	r, err := b.Open(ctx, big)
	if err != nil {
		t.Fatalf("the blob b found went: %v", err)
	}
	r.Close()
	time.Sleep(20 * time.Millisecond)
	if rep, err = collectA.Collect(ctx, noGrace); err != nil || rep.Castore.Blobs != 1 {
		t.Fatalf("without a touch since: %+v %v", rep, err)
	}
}
