package narbridge

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/blobstore"
	"github.com/tvix-go/tvix/castore/dirstore"
	"github.com/tvix-go/tvix/internal/nixtest"
	"github.com/tvix-go/tvix/nix/narinfo"
	"github.com/tvix-go/tvix/store/pathinfo"
)

// TestNixRoundTripKeepsCache is what a Nix user does on one machine: `nix
// copy --to` the bridge, then `nix copy --from` it into another store,
// with Nix's narinfo cache kept between the two. Nix then downloads from
// the URLs it uploaded to (nar/<file hash>.nar.xz, …), which the bridge
// must serve, also after a restart. The paths are input-addressed, signed
// by the uploader (?secret-key=), and the download trusts only that key.
func TestNixRoundTripKeepsCache(t *testing.T) {
	nixtest.Require(t)
	for _, comp := range []string{"none", "xz", "zstd", "bzip2"} {
		t.Run(comp, func(t *testing.T) {
			t.Setenv("XDG_CACHE_HOME", t.TempDir())
			_, top := addPaths(t)
			want := nixPathInfos(t, "-r", top)

			dir := t.TempDir()
			uploaderSK, uploaderPK, err := narinfo.GenerateKey("uploader-1", nil)
			if err != nil {
				t.Fatal(err)
			}
			skFile := filepath.Join(dir, "uploader.sk")
			if err := os.WriteFile(skFile, []byte(uploaderSK.String()), 0o600); err != nil {
				t.Fatal(err)
			}
			bridgeSK, _, err := narinfo.GenerateKey("bridge-1", nil)
			if err != nil {
				t.Fatal(err)
			}
			blobs, dirs := blobstore.NewMemory(), dirstore.NewMemory()
			db := filepath.Join(dir, "pathinfo.db")
			// serve starts the bridge on addr ("" for a new port), over the
			// path infos in db, and returns its URL and a stop function.
			serve := func(addr string) (string, func()) {
				pis, err := pathinfo.NewBolt(db)
				if err != nil {
					t.Fatal(err)
				}
				if addr == "" {
					addr = "127.0.0.1:0"
				}
				lis, err := net.Listen("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				srv := httptest.NewUnstartedServer(New(blobs, dirs, pis, Options{SigningKey: &bridgeSK,
					AllowAnonymousUploads: true, Logger: discardLogger()}))
				srv.Listener.Close()
				srv.Listener = lis
				srv.Start()
				return srv.URL, func() { srv.Close(); pis.Close() }
			}
			url, stop := serve("")
			nixtest.Run(t, "nix", "copy", "--to", url+"?compression="+comp+"&secret-key="+skFile, top)
			// The record of uploaded URLs outlives the process; the port
			// stays, since Nix's cache is per cache URL.
			stop()
			url, stop = serve(url[len("http://"):])
			defer stop()

			root := t.TempDir()
			dst := "local?root=" + root
			nixtest.Run(t, "nix", "copy", "--from", url, "--to", dst,
				"--option", "trusted-public-keys", uploaderPK.String(), top)
			got := nixPathInfos(t, "--store", dst, "-r", top)
			for p, w := range want {
				if g, ok := got[p]; !ok || g.NarHash != w.NarHash || g.NarSize != w.NarSize {
					t.Fatalf("%s copied back as %+v, want %+v", p, g, w)
				}
			}
			nixtest.Run(t, "nix", "store", "verify", "--store", dst, "--no-trust", "-r", top)
		})
	}
}

// TestCorruptPackAbortsNAR: a byte flipped in a pack file makes the NAR
// response fail (an error status before the first byte, an aborted body
// after it), never a NAR with wrong bytes.
func TestCorruptPackAbortsNAR(t *testing.T) {
	dir := t.TempDir()
	blobs, err := blobstore.NewPack(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer blobs.Close()
	pis := pathinfo.NewMemory()
	srv := httptest.NewServer(New(blobs, dirstore.NewMemory(), pis, Options{AllowAnonymousUploads: true, Logger: discardLogger()}))
	defer srv.Close()
	f := &fixture{srv: srv, pis: pis}
	content := strings.Repeat("precious bytes ", 100000) // several chunks
	u := newUpload(t, "corrupt", "", content)
	f.do(t, "PUT", "/"+u.url, u.file)
	if st, b, _ := f.do(t, "PUT", "/"+u.path.HashPart()+".narinfo", []byte(u.narinfo.String())); st != http.StatusOK {
		t.Fatalf("PUT narinfo: %d %s", st, b)
	}
	if err := castore.SyncBlobs(context.Background(), blobs); err != nil {
		t.Fatal(err)
	}
	packs, _ := filepath.Glob(filepath.Join(dir, "packs", "*.pack"))
	flipped := false
	for _, p := range packs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.Index(b, []byte("precious")); i >= 0 {
			b[i+len(content)/2] ^= 1
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			flipped = true
			break
		}
	}
	if !flipped {
		t.Fatal("the file's bytes are in no pack")
	}
	_, body, _ := f.do(t, "GET", "/"+u.path.HashPart()+".narinfo", nil)
	ni, err := narinfo.Parse(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("narinfo: %v\n%s", err, body)
	}
	resp, err := http.Get(srv.URL + "/" + ni.URL)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK && err == nil {
		t.Fatalf("a NAR with a corrupt chunk was served whole (%d bytes, identical: %v)", len(got), bytes.Equal(got, u.nar))
	}
}
