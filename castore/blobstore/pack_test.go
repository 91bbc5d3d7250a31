package blobstore

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castoretest"
)

func TestPack(t *testing.T) {
	castoretest.RunBlobService(t, func(t *testing.T) castore.BlobService {
		s, err := NewPack(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func mustPack(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := NewPack(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func readAll(t *testing.T, s castore.BlobService, d castore.Digest) []byte {
	t.Helper()
	r, err := s.Open(context.Background(), d)
	if err != nil {
		t.Fatalf("open %s: %v", d, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read %s: %v", d, err)
	}
	return b
}

func packSizes(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	entries, _ := os.ReadDir(filepath.Join(dir, "packs"))
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = fi.Size()
	}
	return out
}

// A deferred put is readable at once but only durable (and reported by
// Has, and visible to a store opened after a crash) once synced.
func TestPackDeferredSync(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := mustPack(t, dir)
	data := randomBytes(1, 3<<20)
	d, err := castoretest.PutBlob(t, s, data, 1<<16, castore.WithDeferredSync())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readAll(t, s, d), data) {
		t.Fatal("deferred blob reads back wrong")
	}
	if ok, _ := s.Has(ctx, d); ok {
		t.Fatal("Has reports a blob that is not durable yet")
	}
	// A second store on the same directory sees only what is durable, as a
	// process started after a crash would.
	crashed := mustPack(t, dir)
	if ok, _ := crashed.Has(ctx, d); ok {
		t.Fatal("unsynced blob visible to a new store")
	}
	if _, err := crashed.Open(ctx, d); err == nil {
		t.Fatal("unsynced blob opened by a new store")
	}
	crashed.b.close()

	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Has(ctx, d); !ok {
		t.Fatal("synced blob not reported by Has")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	again := mustPack(t, dir)
	defer again.Close()
	if !bytes.Equal(readAll(t, again, d), data) {
		t.Fatal("synced blob reads back wrong after reopen")
	}
}

// Close syncs deferred puts: a clean exit keeps every closed Put.
func TestPackCloseSyncs(t *testing.T) {
	dir := t.TempDir()
	s := mustPack(t, dir)
	var ds []castore.Digest
	for i := range 50 {
		d, err := castoretest.PutBlob(t, s, randomBytes(uint64(i+10), 5000+i), 4096, castore.WithDeferredSync())
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	again := mustPack(t, dir)
	defer again.Close()
	for i, d := range ds {
		if ok, err := again.Has(context.Background(), d); !ok || err != nil {
			t.Fatalf("blob %d lost at close: %v %v", i, ok, err)
		}
	}
}

// A refused or aborted put leaves no bytes in the packs and nothing visible.
func TestPackRefusedPutLeavesNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := mustPack(t, dir)
	defer s.Close()
	if _, err := castoretest.PutBlob(t, s, []byte("kept"), 4); err != nil {
		t.Fatal(err)
	}
	before := packSizes(t, dir)

	data := randomBytes(2, 3<<20)
	if _, err := castoretest.PutBlob(t, s, data, 1<<16, castore.WithExpectedDigest(castore.Digest{1})); err == nil {
		t.Fatal("mismatch accepted")
	}
	w, err := s.Put(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(randomBytes(3, 2<<20))
	w.Abort()

	after := packSizes(t, dir)
	for name, size := range after {
		if b, ok := before[name]; ok && b != size {
			t.Fatalf("pack %s grew from %d to %d bytes after refused puts", name, b, size)
		}
		if _, ok := before[name]; !ok && size > 0 {
			t.Fatalf("new pack %s holds %d bytes after refused puts", name, size)
		}
	}
	for _, d := range []castore.Digest{castore.HashBlob(data)} {
		if ok, _ := s.Has(ctx, d); ok {
			t.Fatal("refused blob visible")
		}
	}
}

// Bytes a crash left after the last indexed chunk of a pack are ignored,
// and new puts never append behind them.
func TestPackTornTail(t *testing.T) {
	dir := t.TempDir()
	s := mustPack(t, dir)
	data := randomBytes(4, 1<<20)
	d, err := castoretest.PutBlob(t, s, data, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	packs, _ := filepath.Glob(filepath.Join(dir, "packs", "*.pack"))
	if len(packs) != 1 {
		t.Fatalf("%d packs, want 1", len(packs))
	}
	f, err := os.OpenFile(packs[0], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("half a chunk"))
	f.Close()
	torn, _ := os.Stat(packs[0])

	s = mustPack(t, dir)
	defer s.Close()
	if !bytes.Equal(readAll(t, s, d), data) {
		t.Fatal("blob before the torn tail reads back wrong")
	}
	other := randomBytes(5, 300000)
	d2, err := castoretest.PutBlob(t, s, other, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readAll(t, s, d2), other) {
		t.Fatal("new blob reads back wrong")
	}
	if fi, _ := os.Stat(packs[0]); fi.Size() != torn.Size() {
		t.Fatal("a new put appended to a pack of an earlier process")
	}
}

// Identical chunks are stored once, across blobs and across deferred puts
// that are not durable yet.
func TestPackDedup(t *testing.T) {
	dir := t.TempDir()
	s := mustPack(t, dir)
	defer s.Close()
	data := randomBytes(6, 4<<20)
	if _, err := castoretest.PutBlob(t, s, data, 1<<16, castore.WithDeferredSync()); err != nil {
		t.Fatal(err)
	}
	total := func() (n int64) {
		for _, size := range packSizes(t, dir) {
			n += size
		}
		return n
	}
	first := total()
	if _, err := castoretest.PutBlob(t, s, data, 1<<16, castore.WithDeferredSync()); err != nil {
		t.Fatal(err)
	}
	// A changed tail shares every chunk but the last few.
	changed := append(bytes.Clone(data), []byte("more")...)
	if _, err := castoretest.PutBlob(t, s, changed, 1<<16); err != nil {
		t.Fatal(err)
	}
	if grew := total() - first; grew > 2<<20 {
		t.Fatalf("packs grew by %d bytes for duplicate and near-duplicate blobs", grew)
	}
}

func TestPackRefusesUnknownFormat(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, formatFile), []byte("tvix-go packstore v99\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := NewPack(dir); err == nil || !strings.Contains(err.Error(), "unknown format") {
		t.Fatalf("NewPack on a v99 store = %v, want unknown format error", err)
	}
}

// A blob's chunks lie back to back in one pack, so any range of it is one
// file range a server can splice; single-chunk blobs too.
func TestPackFileRange(t *testing.T) {
	ctx := context.Background()
	s := mustPack(t, t.TempDir())
	defer s.Close()
	for _, size := range []int{100, 3 << 20} {
		data := randomBytes(uint64(size), size)
		d, err := castoretest.PutBlob(t, s, data, 1<<16)
		if err != nil {
			t.Fatal(err)
		}
		if cs, _ := s.Chunks(ctx, d); size > 1<<20 && len(cs) < 2 {
			t.Fatalf("%d-byte blob stored as %d chunks; the test wants several", size, len(cs))
		}
		r, err := s.Open(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		fr, ok := r.(castore.FileRanger)
		if !ok {
			t.Fatalf("pack reader %T does not offer file ranges", r)
		}
		for _, c := range []struct{ off, n, want int }{
			{0, size, size},
			{size / 3, size / 2, size / 2},
			{size - 10, 100, 10},
			{size, 1, 0},
		} {
			f, fileOff, got := fr.FileRange(int64(c.off), c.n)
			if got != c.want {
				t.Fatalf("FileRange(%d, %d) of a %d-byte blob: %d contiguous, want %d", c.off, c.n, size, got, c.want)
			}
			if got == 0 {
				continue
			}
			buf := make([]byte, got)
			if _, err := f.ReadAt(buf, fileOff); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf, data[c.off:c.off+got]) {
				t.Fatalf("FileRange(%d, %d) names the wrong bytes", c.off, c.n)
			}
		}
		r.Close()
	}
}

// A large blob written in one piece gets a pack of its own that is exactly
// its bytes (what FUSE passthrough needs), before and after a reopen; a
// small blob, or one that shares chunks with stored ones, does not.
func TestPackBackingFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := mustPack(t, dir)
	big := randomBytes(11, 5<<20+3)
	d, err := castoretest.PutBlob(t, s, big, 1<<16, castore.WithDeferredSync())
	if err != nil {
		t.Fatal(err)
	}
	check := func(s *Store, want bool) {
		t.Helper()
		f, size, ok := s.BackingFile(ctx, d)
		if ok && size != int64(len(big)) {
			t.Fatalf("BackingFile size %d, blob has %d bytes", size, len(big))
		}
		if ok != want {
			t.Fatalf("BackingFile ok = %v, want %v", ok, want)
		}
		if !ok {
			return
		}
		got, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<40))
		if err != nil || !bytes.Equal(got, big) {
			t.Fatalf("backing file holds %d bytes (%v), not the blob's %d", len(got), err, len(big))
		}
	}
	check(s, true)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustPack(t, dir)
	defer s.Close()
	check(s, true)

	small, err := castoretest.PutBlob(t, s, randomBytes(12, 100_000), 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok := s.BackingFile(ctx, small); ok {
		t.Fatal("a small blob got a pack of its own")
	}
	shared := append(bytes.Clone(big[:3<<20]), randomBytes(13, 3<<20)...)
	sd, err := castoretest.PutBlob(t, s, shared, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok := s.BackingFile(ctx, sd); ok {
		t.Fatal("a blob sharing chunks got a backing file (its pack lacks the shared chunks)")
	}
	if !bytes.Equal(readAll(t, s, sd), shared) {
		t.Fatal("blob sharing chunks reads back wrong")
	}
}

// A directory that is not a blob store is refused and left as it was.
func TestForeignDirectoryUntouched(t *testing.T) {
	for name, open := range map[string]func(string) (*Store, error){"pack": NewPack, "file": NewFile} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "mine"), []byte("x"), 0o644)
		if _, err := open(dir); err == nil || !strings.Contains(err.Error(), "not empty") {
			t.Fatalf("%s store on a foreign directory: %v, want a refusal", name, err)
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 {
			t.Fatalf("%s store left %d entries in a foreign directory, want only the user's file", name, len(entries))
		}
	}
}

// Pack numbers are never reused: a reopened store numbers new packs after
// those the index recorded and after any pack file a crashed process left
// (created, never indexed), and the blobs of every pack read back.
func TestPackNumbersNotReused(t *testing.T) {
	dir := t.TempDir()
	s := mustPack(t, dir)
	first := randomBytes(6, 300000)
	d1, err := castoretest.PutBlob(t, s, first, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	// A crashed process's pack, never indexed.
	stray := filepath.Join(dir, "packs", "00000007.pack")
	if err := os.WriteFile(stray, []byte("unindexed"), 0o644); err != nil {
		t.Fatal(err)
	}

	s = mustPack(t, dir)
	second := randomBytes(7, 300000)
	d2, err := castoretest.PutBlob(t, s, second, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if b, _ := os.ReadFile(stray); string(b) != "unindexed" {
		t.Fatal("a new pack reused the number of a pack file left on disk")
	}
	packs, _ := filepath.Glob(filepath.Join(dir, "packs", "*.pack"))
	if len(packs) != 3 || filepath.Base(packs[2]) != "00000008.pack" {
		t.Fatalf("packs %v, want the new one numbered 8", packs)
	}

	// The barrier recorded 8: with the stray file gone, 9 comes next.
	os.Remove(stray)
	s = mustPack(t, dir)
	defer s.Close()
	third := randomBytes(8, 300000)
	if _, err := castoretest.PutBlob(t, s, third, 1<<16); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "packs", "00000009.pack")); err != nil {
		t.Fatalf("next pack after a recorded 8: %v", err)
	}
	for d, want := range map[castore.Digest][]byte{d1: first, d2: second} {
		if !bytes.Equal(readAll(t, s, d), want) {
			t.Fatalf("blob %s reads back wrong", d)
		}
	}
}
