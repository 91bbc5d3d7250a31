package narbridge

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/blobstore"
	"github.com/tvix-go/tvix/castore/dirstore"
	"github.com/tvix-go/tvix/nix/narinfo"
	"github.com/tvix-go/tvix/store/pathinfo"
)

// packFixture is a bridge over a pack store (whose readers name file
// ranges, so NARs go out by sendfile) holding one uploaded path.
type packFixture struct {
	*fixture
	dir  string
	up   *upload
	nurl string // the NAR URL the narinfo names
}

func newPackFixture(t testing.TB, content string) *packFixture {
	return newPackFixtureCache(t, content, 0)
}

// newPackFixtureCache is newPackFixture with Options.ChunkCache set:
// negative, every NAR goes out by sendfile; 0, the default cache.
func newPackFixtureCache(t testing.TB, content string, chunkCache int64) *packFixture {
	t.Helper()
	dir := t.TempDir()
	blobs, err := blobstore.NewPack(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { blobs.Close() })
	pis := pathinfo.NewMemory()
	h := New(blobs, dirstore.NewMemory(), pis, Options{AllowAnonymousUploads: true, Logger: discardLogger(), ChunkCache: chunkCache})
	srv := httptest.NewUnstartedServer(h)
	// As the daemon serves: HTTP/1.1, and HTTP/2 to clients that start
	// with it (h2c).
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	f := &fixture{srv: srv, pis: pis, h: h}
	u := newUpload(t, "sendfile", "", content)
	if st, b, _ := f.do(t, "PUT", "/"+u.url, u.file); st != http.StatusOK {
		t.Fatalf("PUT NAR: %d %s", st, b)
	}
	if st, b, _ := f.do(t, "PUT", "/"+u.path.HashPart()+".narinfo", []byte(u.narinfo.String())); st != http.StatusOK {
		t.Fatalf("PUT narinfo: %d %s", st, b)
	}
	if err := castore.SyncBlobs(context.Background(), blobs); err != nil {
		t.Fatal(err)
	}
	_, body, _ := f.do(t, "GET", "/"+u.path.HashPart()+".narinfo", nil)
	ni, err := narinfo.Parse(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("narinfo: %v\n%s", err, body)
	}
	return &packFixture{fixture: f, dir: dir, up: u, nurl: srv.URL + "/" + ni.URL}
}

// randomContent is incompressible, several chunks long.
func randomContent(n int) string {
	b := make([]byte, n)
	rand.New(rand.NewSource(int64(n))).Read(b)
	return string(b)
}

// cacheModes are the ways a pack store's NAR goes out: by sendfile (no
// chunk cache), and from the chunk cache (read into it on the first
// request, from memory after).
var cacheModes = []struct {
	name  string
	cache int64
}{{"sendfile", -1}, {"chunk cache", 0}}

// TestServeFromPackFiles: NARs served from pack files (sendfile over
// HTTP/1.1, copied over HTTP/2, cut for a range; or from the chunk cache)
// are the NAR, byte for byte, the first time and again.
func TestServeFromPackFiles(t *testing.T) {
	for _, mode := range cacheModes {
		for _, size := range []int{100, 70 << 10, 3 << 20, 12 << 20} {
			f := newPackFixtureCache(t, randomContent(size), mode.cache)
			h2c := &http.Transport{Protocols: new(http.Protocols)}
			h2c.Protocols.SetUnencryptedHTTP2(true)
			clients := []struct {
				proto string
				c     *http.Client
			}{{"HTTP/1.1", &http.Client{Transport: &http.Transport{}}}, {"HTTP/2.0", &http.Client{Transport: h2c}}, {"HTTP/1.1", &http.Client{Transport: &http.Transport{}}}}
			for _, c := range clients {
				resp, err := c.c.Get(f.nurl)
				if err != nil {
					t.Fatalf("%s, %d bytes, %s: %v", mode.name, size, c.proto, err)
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					t.Fatalf("%s, %d bytes, %s: %s, %v", mode.name, size, c.proto, resp.Status, err)
				}
				if resp.Proto != c.proto {
					t.Errorf("%s, %d bytes: asked for %s, answered in %s", mode.name, size, c.proto, resp.Proto)
				}
				if !bytes.Equal(got, f.up.nar) {
					t.Errorf("%s, %d bytes, %s: got %d bytes, not the NAR of %d", mode.name, size, c.proto, len(got), len(f.up.nar))
				}
			}
		}
	}
}

// flipInPacks flips a byte of the pack files where probe is found, and
// fails the test if it is in none.
func flipInPacks(t *testing.T, dir string, probe []byte) {
	t.Helper()
	packs, _ := filepath.Glob(filepath.Join(dir, "packs", "*.pack"))
	flipped := false
	for _, p := range packs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.Index(b, probe); i >= 0 {
			b[i+32] ^= 1
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			flipped = true
		}
	}
	if !flipped {
		t.Fatal("the file's bytes are in no pack")
	}
}

// TestSendfileNeverSendsACorruptByte: with a byte flipped in the middle of
// a large file's pack range, what a client receives before the response
// breaks off is a prefix of the true NAR: the corrupt chunk is never sent,
// by sendfile nor (never admitted) from the chunk cache.
func TestSendfileNeverSendsACorruptByte(t *testing.T) {
	for _, mode := range cacheModes {
		content := randomContent(12 << 20)
		f := newPackFixtureCache(t, content, mode.cache)
		flipInPacks(t, f.dir, []byte(content[6<<20:6<<20+64]))
		for range 2 { // the second time, the chunks before it are cached
			resp, err := http.Get(f.nurl)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode == http.StatusOK {
				t.Fatalf("%s: a NAR with a corrupt chunk was served whole (%d bytes)", mode.name, len(got))
			}
			if !bytes.HasPrefix(f.up.nar, got) {
				t.Fatalf("%s: the %d bytes received are not a prefix of the NAR: a corrupt byte went out", mode.name, len(got))
			}
			if len(got) >= len(f.up.nar)/2+64 {
				t.Fatalf("%s: received %d bytes, past the corrupt byte at about %d", mode.name, len(got), len(f.up.nar)/2)
			}
		}
	}
}

// TestChunkCacheServesWhatWasVerified: a NAR served once is in the chunk
// cache; a byte flipped on disk afterwards does not reach clients, who get
// the verified bytes, whole, from memory. Without the cache the same flip
// breaks the response off (above): the cache keeps the guarantee, a
// corrupt stored byte is never served.
func TestChunkCacheServesWhatWasVerified(t *testing.T) {
	content := randomContent(12 << 20)
	f := newPackFixture(t, content)
	get := func() ([]byte, error) {
		resp, err := http.Get(f.nurl)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		return io.ReadAll(resp.Body)
	}
	if got, err := get(); err != nil || !bytes.Equal(got, f.up.nar) {
		t.Fatalf("first GET: %d bytes, %v", len(got), err)
	}
	flipInPacks(t, f.dir, []byte(content[6<<20:6<<20+64]))
	got, err := get()
	if err != nil || !bytes.Equal(got, f.up.nar) {
		t.Fatalf("GET after the flip: %d bytes (NAR: %d), equal %v, %v", len(got), len(f.up.nar), bytes.Equal(got, f.up.nar), err)
	}
}

// TestRangeSkipsWhatComesBefore: a range deep into a large file is cut
// from the NAR without reading the chunks before it: with one of those
// corrupt on disk, the range is still served whole (none of its bytes is
// corrupt), and a range over the corrupt chunk is refused.
func TestRangeSkipsWhatComesBefore(t *testing.T) {
	content := randomContent(12 << 20)
	f := newPackFixtureCache(t, content, -1)
	flipInPacks(t, f.dir, []byte(content[2<<20:2<<20+64]))
	get := func(from, to int) (int, []byte, error) {
		req, _ := http.NewRequest("GET", f.nurl, nil)
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", from, to-1))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, b, err
	}
	n := len(f.up.nar)
	st, got, err := get(n-(4<<20), n-(3<<20))
	if err != nil || st != http.StatusPartialContent || !bytes.Equal(got, f.up.nar[n-(4<<20):n-(3<<20)]) {
		t.Fatalf("range past a corrupt chunk: %d, %d bytes, %v", st, len(got), err)
	}
	_, got, err = get(1<<20, 4<<20)
	if err == nil && len(got) == 3<<20 {
		t.Fatal("a range over a corrupt chunk was served whole")
	}
	if !bytes.HasPrefix(f.up.nar[1<<20:], got) {
		t.Fatal("a range over a corrupt chunk sent bytes that are not the NAR's")
	}
}
