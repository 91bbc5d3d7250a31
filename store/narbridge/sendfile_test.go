package narbridge

import (
	"bytes"
	"context"
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
	t.Helper()
	dir := t.TempDir()
	blobs, err := blobstore.NewPack(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { blobs.Close() })
	pis := pathinfo.NewMemory()
	h := New(blobs, dirstore.NewMemory(), pis, Options{AllowAnonymousUploads: true, Logger: discardLogger()})
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

// TestServeFromPackFiles: NARs served from pack files (sendfile over
// HTTP/1.1, copied over HTTP/2, cut for a range) are the NAR, byte for
// byte.
func TestServeFromPackFiles(t *testing.T) {
	for _, size := range []int{100, 70 << 10, 3 << 20, 12 << 20} {
		f := newPackFixture(t, randomContent(size))
		h2c := &http.Transport{Protocols: new(http.Protocols)}
		h2c.Protocols.SetUnencryptedHTTP2(true)
		clients := map[string]*http.Client{"HTTP/1.1": {Transport: &http.Transport{}}, "HTTP/2.0": {Transport: h2c}}
		for name, c := range clients {
			resp, err := c.Get(f.nurl)
			if err != nil {
				t.Fatalf("%d bytes, %s: %v", size, name, err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("%d bytes, %s: %s, %v", size, name, resp.Status, err)
			}
			if resp.Proto != name {
				t.Errorf("%d bytes: asked for %s, answered in %s", size, name, resp.Proto)
			}
			if !bytes.Equal(got, f.up.nar) {
				t.Errorf("%d bytes, %s: got %d bytes, not the NAR of %d", size, name, len(got), len(f.up.nar))
			}
		}
	}
}

// TestSendfileNeverSendsACorruptByte: with a byte flipped in the middle of
// a large file's pack range, what a client receives before the response
// breaks off is a prefix of the true NAR: the corrupt chunk is never sent.
func TestSendfileNeverSendsACorruptByte(t *testing.T) {
	content := randomContent(12 << 20)
	f := newPackFixture(t, content)
	packs, _ := filepath.Glob(filepath.Join(f.dir, "packs", "*.pack"))
	flipped := false
	probe := []byte(content[6<<20 : 6<<20+64])
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
	resp, err := http.Get(f.nurl)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode == http.StatusOK {
		t.Fatalf("a NAR with a corrupt chunk was served whole (%d bytes)", len(got))
	}
	if !bytes.HasPrefix(f.up.nar, got) {
		t.Fatalf("the %d bytes received are not a prefix of the NAR: a corrupt byte went out", len(got))
	}
	if len(got) >= len(f.up.nar)/2+64 {
		t.Fatalf("received %d bytes, past the corrupt byte at about %d", len(got), len(f.up.nar)/2)
	}
}
