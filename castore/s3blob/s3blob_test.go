package s3blob

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/blobstore"
	"github.com/tvix-go/tvix/castore/castoretest"
	"github.com/tvix-go/tvix/internal/scaletest"
)

func config(t testing.TB, raw string) Config {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func open(t testing.TB, c Config) *blobstore.Store {
	t.Helper()
	s, err := Open(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	castoretest.RunBlobService(t, func(t *testing.T) castore.BlobService {
		return open(t, config(t, scaletest.S3URL(t)))
	})
}

func TestConformanceWithDiskCache(t *testing.T) {
	castoretest.RunBlobService(t, func(t *testing.T) castore.BlobService {
		c := config(t, scaletest.S3URL(t))
		c.CacheDir = t.TempDir()
		return open(t, c)
	})
}

func randomBytes(n int, seed int64) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

// The bucket holds Tvix's layout: the chunk list at blobs/b3/<4 hex>/<hex>
// and each chunk, zstd-compressed, at chunks/b3/<4 hex>/<hex>.
func TestLayoutIsTvixs(t *testing.T) {
	ctx := context.Background()
	c := config(t, scaletest.S3URL(t))
	s := open(t, c)
	data := randomBytes(3<<20, 1)
	d, err := castoretest.PutBlob(t, s, data, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewBucket(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	h := d.Hex()
	if _, err := b.Get(ctx, "blobs/b3/"+h[:4]+"/"+h); err != nil {
		t.Fatalf("chunk list not at Tvix's key: %v", err)
	}
	chunks, err := s.Chunks(ctx, d)
	if err != nil || len(chunks) < 2 {
		t.Fatalf("Chunks = %d, %v; want several", len(chunks), err)
	}
	dec, _ := zstd.NewReader(nil)
	defer dec.Close()
	var joined []byte
	for _, ch := range chunks {
		ch := ch.Digest.Hex()
		raw, err := b.Get(ctx, "chunks/b3/"+ch[:4]+"/"+ch)
		if err != nil {
			t.Fatalf("chunk %s not at Tvix's key: %v", ch, err)
		}
		plain, err := dec.DecodeAll(raw, nil)
		if err != nil {
			t.Fatalf("chunk %s is not zstd: %v", ch, err)
		}
		joined = append(joined, plain...)
	}
	if !bytes.Equal(joined, data) {
		t.Fatal("the chunks do not join to the blob")
	}
	n := 0
	for _, err := range b.List(ctx, "") {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != len(chunks)+1 {
		t.Fatalf("bucket holds %d objects, want %d chunks and one chunk list", n, len(chunks))
	}
}

// A put that is aborted, or whose contents are not the expected ones,
// leaves no blob visible: at most chunks nothing names.
func TestNothingVisibleBeforeTheChunkList(t *testing.T) {
	ctx := context.Background()
	c := config(t, scaletest.S3URL(t))
	s := open(t, c)
	b, _ := NewBucket(ctx, c)
	for _, size := range []int{100, 5 << 20} {
		data := randomBytes(size, int64(size))
		want := castore.HashBlob(data)
		w, _ := s.Put(ctx)
		w.Write(data)
		w.Abort()
		w, _ = s.Put(ctx, castore.WithExpectedDigest(castore.HashBlob([]byte("other"))))
		w.Write(data)
		if _, err := w.Close(); err == nil {
			t.Fatal("a put with the wrong expected digest succeeded")
		}
		if has, err := s.Has(ctx, want); has || err != nil {
			t.Fatalf("%d bytes: Has after abort = %v, %v", size, has, err)
		}
		for key, err := range b.List(ctx, "blobs/") {
			t.Fatalf("%d bytes: chunk list %s visible (%v)", size, key.Key, err)
		}
		if size < 1<<20 {
			for key, err := range b.List(ctx, "") {
				t.Fatalf("small blob: %s stored though the put was refused (%v)", key.Key, err)
			}
		}
	}
}

// A corrupt chunk in the bucket is never served: reads fail naming it.
func TestCorruptChunkIsNotServed(t *testing.T) {
	ctx := context.Background()
	c := config(t, scaletest.S3URL(t))
	s := open(t, c)
	data := randomBytes(200<<10, 3)
	d, err := castoretest.PutBlob(t, s, data, len(data))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewBucket(ctx, c)
	enc, _ := zstd.NewWriter(nil)
	bad := bytes.Clone(data)
	bad[1000] ^= 1
	if err := b.Put(ctx, blobstore.ObjectKey(blobstore.ChunkObjects, d), enc.EncodeAll(bad, nil)); err != nil {
		t.Fatal(err)
	}
	r, err := s.Open(ctx, d)
	if err == nil {
		_, err = r.ReadAt(make([]byte, 10), 0)
		r.Close()
	}
	if !errors.Is(err, blobstore.ErrCorrupt) || !strings.Contains(err.Error(), d.Hex()) {
		t.Fatalf("read of a corrupt chunk: %v, want ErrCorrupt naming it", err)
	}
	if err := b.Put(ctx, blobstore.ObjectKey(blobstore.ChunkObjects, d), []byte("not zstd")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(ctx, d); !errors.Is(err, blobstore.ErrCorrupt) {
		t.Fatalf("open of an undecodable chunk: %v, want ErrCorrupt", err)
	}
}

// The disk cache serves what it fetched once, and stays under its bound.
func TestDiskCacheBound(t *testing.T) {
	ctx := context.Background()
	c := config(t, scaletest.S3URL(t))
	c.CacheDir, c.CacheBytes = t.TempDir(), 2<<20
	s := open(t, c)
	var digests []castore.Digest // of chunks
	for i := range 8 {
		d, err := castoretest.PutBlob(t, s, randomBytes(700<<10, int64(i+10)), 1<<16)
		if err != nil {
			t.Fatal(err)
		}
		chunks, err := s.Chunks(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		if len(chunks) == 0 {
			chunks = []castore.ChunkMeta{{Digest: d}}
		}
		for _, c := range chunks {
			digests = append(digests, c.Digest)
		}
	}
	bucket, _ := NewBucket(ctx, c)
	cache, err := newDiskCache(bucket, c.CacheDir, c.CacheBytes)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range digests {
		data, err := cache.Get(ctx, blobstore.ObjectKey(blobstore.ChunkObjects, d))
		if err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		if cache.cachedBytes() > c.CacheBytes {
			t.Fatalf("cache holds %d bytes, over its bound %d", cache.cachedBytes(), c.CacheBytes)
		}
		again, err := cache.Get(ctx, blobstore.ObjectKey(blobstore.ChunkObjects, d))
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("chunk %d from the cache: %v", i, err)
		}
	}
	if cache.cachedBytes() == 0 {
		t.Fatal("nothing cached")
	}
}

// Restarting the S3 server while blobs are written and read gives
// retries, never wrong bytes, and the store works again by itself.
func TestServerRestartDuringTraffic(t *testing.T) {
	ctx := context.Background()
	c := config(t, scaletest.S3URL(t))
	s := open(t, c)
	ok, errs := scaletest.DuringRestart(t, "s3", 4, func(w, i int) error {
		data := randomBytes(300<<10+i, int64(w*1000+i))
		d, err := castoretest.PutBlob(t, s, data, 1<<15)
		if err != nil {
			return err
		}
		r, err := s.Open(ctx, d)
		if err != nil {
			return err
		}
		defer r.Close()
		got := make([]byte, len(data))
		if _, err := r.ReadAt(got, 0); err != nil {
			return err
		}
		if !bytes.Equal(got, data) {
			t.Errorf("wrong bytes read back for %s", d)
		}
		return nil
	})
	t.Logf("%d round trips succeeded, %d failed across the restart", ok, len(errs))
	for _, err := range errs[:min(len(errs), 5)] {
		t.Errorf("an operation failed instead of retrying: %v", err)
	}
	if _, err := castoretest.PutBlob(t, s, []byte("after"), 5); err != nil {
		t.Fatalf("store did not recover: %v", err)
	}
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		url, err string
	}{
		{"objectstore+s3://b/p?endpoint=http://127.0.0.1:1&region=us-east-1", ""},
		{"objectstore+s3:///p", "no bucket"},
		{"objectstore+s3://b?bogus=1", `unknown parameter "bogus"`},
		{"objectstore+s3://b?retry-for=soon", "retry-for"},
		{"objectstore+s3://b?uploads=0", "uploads"},
		{"objectstore+s3://b?cache-size=1G", "without cache"},
		{"objectstore+s3://b?cache=/x&cache-size=-1", "cache-size"},
		{"objectstore+s3://b?cache=/x&cache-size=9223372036854775807G", "cache-size"},
		{"objectstore+s3://b?touch-refresh=soon", "touch-refresh"},
		{"objectstore+s3://b?touch-refresh=-1m", "touch-refresh"},
	} {
		u, _ := url.Parse(tc.url)
		_, err := ParseURL(u)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: %v, want %q", tc.url, err, tc.err)
		}
	}
	if _, err := NewBucket(context.Background(), Config{Bucket: "b", Endpoint: "ftp://x"}); err == nil || !strings.Contains(err.Error(), "endpoint") {
		t.Errorf("bad endpoint: %v", err)
	}
}

// A sweep deletes the chunk lists and chunks of dead blobs written before
// its epoch, chunk lists first; live blobs, the chunks they share with
// dead ones, and chunks another writer touched (found present, so did not
// send) after the epoch stay. A dry run deletes nothing.
func TestSweep(t *testing.T) {
	ctx := context.Background()
	c := config(t, scaletest.S3URL(t))
	c.CacheDir = t.TempDir() // the cache passes sweeping through
	c.TouchRefresh = -1      // every use touches: the epoch is a second old
	s := open(t, c)
	shared := randomBytes(2<<20, 40)
	put := func(data []byte) castore.Digest {
		d, err := castoretest.PutBlob(t, s, data, 1<<16)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	live := put(append(bytes.Clone(shared), randomBytes(2<<20, 41)...))
	dead := put(append(bytes.Clone(shared), randomBytes(2<<20, 42)...))
	deadSmall := put([]byte("small and dead"))
	// Dead, but written again after the epoch (below).
	reused, reusedSmall := randomBytes(3<<20, 43), []byte("small, dead, and written again")
	put(reused)
	put(reusedSmall)
	askedFor := randomBytes(2<<20, 44) // dead, but found by a Has after the epoch
	put(askedFor)
	time.Sleep(1100 * time.Millisecond) // object times have 1 s resolution
	epoch := time.Now()
	time.Sleep(1100 * time.Millisecond)
	put(reused)      // a chunk list written again, naming its chunks
	put(reusedSmall) // its one chunk found present: touched, not sent
	if has, err := s.Has(ctx, castore.HashBlob(askedFor)); !has || err != nil {
		t.Fatalf("Has: %v, %v", has, err)
	}
	isLive := func(d castore.Digest) bool { return d == live }

	dry, err := s.SweepObjects(ctx, isLive, epoch, true)
	if err != nil {
		t.Fatal(err)
	}
	if dry.Blobs != 1 || dry.Chunks < 2 || dry.Kept != 1 {
		t.Fatalf("dry run: %+v, want the dead chunk list, its own chunks and the small dead blob, and the touched chunk kept", dry)
	}
	// (Looked at in the bucket: Has counts as a use and would touch it.)
	bucket, _ := NewBucket(ctx, c)
	if has, _ := bucket.Exists(ctx, blobstore.ObjectKey(blobstore.BlobObjects, dead)); !has {
		t.Fatal("a dry run deleted")
	}
	// Through castore.Collectable, as store/gc sweeps.
	coll, ok := castore.As[castore.Collectable](s)
	if !ok {
		t.Fatal("the S3 store is not castore.Collectable")
	}
	rep, err := coll.Sweep(ctx, castore.SweepRequest{Live: isLive, Since: epoch})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Blobs != dry.Blobs || rep.Chunks != dry.Chunks || rep.Kept != dry.Kept || rep.BytesFreed != dry.BytesFreed {
		t.Fatalf("sweep %+v, dry run said %+v", rep, dry)
	}
	for _, d := range []castore.Digest{dead, deadSmall} {
		if has, err := s.Has(ctx, d); has || err != nil {
			t.Fatalf("dead blob %s: Has = %v, %v", d, has, err)
		}
	}
	for _, tc := range []struct {
		d    castore.Digest
		want []byte
	}{{live, append(bytes.Clone(shared), randomBytes(2<<20, 41)...)}} {
		r, err := s.Open(ctx, tc.d)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, tc.want) {
			t.Fatalf("live blob after the sweep: %v", err)
		}
	}
	// What was written or touched after the epoch is all there.
	for _, want := range [][]byte{reused, reusedSmall, askedFor} {
		r, err := s.Open(ctx, castore.HashBlob(want))
		if err != nil {
			t.Fatalf("a blob written again after the epoch: %v", err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("a blob written again after the epoch: %v", err)
		}
	}
}

func FuzzParseURL(f *testing.F) {
	f.Add("objectstore+s3://b/p?endpoint=http://127.0.0.1:1&region=r&uploads=3&cache=/x&cache-size=10G&retry-for=5s&touch-refresh=2m")
	f.Add("objectstore+s3://b?cache-size=1K")
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.Parse(raw)
		if err != nil {
			return
		}
		c, err := ParseURL(u)
		if err != nil {
			return
		}
		if c.Bucket == "" || c.Uploads < 0 || c.CacheBytes < 0 || (c.CacheBytes > 0 && c.CacheDir == "") {
			t.Fatalf("accepted %q as %+v", raw, c)
		}
	})
}

// Uses of objects modified less than the touch refresh ago write nothing
// (reads stay reads: a touch is a metadata rewrite on the server); an
// object that has aged is touched by its next use; a sweep keeps what
// was modified up to the refresh before its epoch, which covers the
// uses that did not touch.
func TestTouchRefresh(t *testing.T) {
	ctx := context.Background()
	c := config(t, scaletest.S3URL(t)+"&touch-refresh=4s")
	s := open(t, c)
	bucket, err := NewBucket(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	big, small := randomBytes(3<<20, 60), []byte("one small chunk")
	bigD, err := castoretest.PutBlob(t, s, big, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	smallD, err := castoretest.PutBlob(t, s, small, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	listKey := blobstore.ObjectKey(blobstore.BlobObjects, bigD)
	smallKey := blobstore.ObjectKey(blobstore.ChunkObjects, smallD)
	modified := func(key string) time.Time {
		t.Helper()
		info, found, err := bucket.Stat(ctx, key)
		if err != nil || !found {
			t.Fatalf("stat %s: %v, %v", key, found, err)
		}
		return info.Modified
	}
	use := func() {
		t.Helper()
		for _, d := range []castore.Digest{bigD, smallD} {
			if has, err := s.Has(ctx, d); !has || err != nil {
				t.Fatalf("Has %s: %v, %v", d, has, err)
			}
			r, err := s.Open(ctx, d)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, r)
			r.Close()
		}
	}
	listTime, smallTime := modified(listKey), modified(smallKey)
	time.Sleep(1100 * time.Millisecond) // object times have 1 s resolution
	use()
	if modified(listKey) != listTime || modified(smallKey) != smallTime {
		t.Fatal("reads of fresh objects rewrote them")
	}
	// A fresh process (no memory of what it saw) does not touch either.
	other := open(t, c)
	if has, err := other.Has(ctx, bigD); !has || err != nil {
		t.Fatalf("Has in a second store: %v, %v", has, err)
	}
	if modified(listKey) != listTime {
		t.Fatal("a second store's Has of a fresh object rewrote it")
	}
	time.Sleep(4 * time.Second)
	use()
	if !modified(listKey).After(listTime) || !modified(smallKey).After(smallTime) {
		t.Fatal("uses of objects older than the refresh did not touch them")
	}
	// The sweep's margin: the epoch is now, nothing is live, and what
	// was touched a moment ago (less than the refresh) stays.
	rep, err := s.SweepObjects(ctx, func(castore.Digest) bool { return false }, time.Now(), true)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Blobs != 0 || rep.Chunks != 0 {
		t.Fatalf("a sweep would delete objects used within the refresh: %+v", rep)
	}
}
