package nixcache

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tvix-go/tvix/castore/blobstore"
	"github.com/tvix-go/tvix/castore/dirstore"
	"github.com/tvix-go/tvix/internal/nixtest"
	"github.com/tvix-go/tvix/nix/narinfo"
	"github.com/tvix-go/tvix/nix/nixhash"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/narcastore"
	"github.com/tvix-go/tvix/store/pathinfo"
)

// TestNixWrittenCache substitutes from binary caches C++ Nix wrote with
// `nix copy --to file://…` (signed, xz and zstd), read as nix+file:// and
// as nix+http:// through Open, and checks every path's NAR renders
// back byte for byte as `nix-store --dump` has it.
func TestNixWrittenCache(t *testing.T) {
	nixtest.Require(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	dir := filepath.Join(t.TempDir(), "tree")
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "sub", "big"), bytes.Repeat([]byte("nixcache "), 20000), 0o644)
	os.WriteFile(filepath.Join(dir, "run"), []byte("#!/bin/sh\n"), 0o755)
	os.Symlink("run", filepath.Join(dir, "link"))
	tree := nixtest.Text(t, "nix-store", "--add", dir)
	drv := `derivation { name = "nixcache-out"; system = builtins.currentSystem; builder = "/bin/sh";
		args = [ "-c" "echo ${builtins.storePath "` + tree + `"} ` + t.Name() + ` > $out" ]; }`
	out := nixtest.Text(t, "nix-build", "--no-out-link", "-E", drv)
	var want []struct {
		Path    string `json:"path"`
		NarHash string `json:"narHash"`
	}
	if err := json.Unmarshal(nixtest.Run(t, "nix", "path-info", "--json", "-r", out), &want); err != nil || len(want) != 2 {
		t.Fatalf("closure of %s: %v %v", out, want, err)
	}

	skFile := filepath.Join(t.TempDir(), "sk")
	pkFile := filepath.Join(t.TempDir(), "pk")
	nixtest.Run(t, "nix-store", "--generate-binary-cache-key", "nixcache-test-1", skFile, pkFile)
	pk, err := os.ReadFile(pkFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := narinfo.ParsePublicKey(string(pk)); err != nil {
		t.Fatal(err)
	}
	for _, comp := range []string{"xz", "zstd"} {
		cache := t.TempDir()
		nixtest.Run(t, "nix", "copy", "--to", "file://"+cache+"?compression="+comp+"&secret-key="+skFile, out)
		srv := httptest.NewServer(http.FileServer(http.Dir(cache)))
		defer srv.Close()
		for _, base := range []string{"nix+file://" + cache, "nix+" + srv.URL} {
			t.Run(comp+"/"+base[:8], func(t *testing.T) {
				blobs, dirs := blobstore.NewMemory(), dirstore.NewMemory()
				u, err := url.Parse(base + "?trusted-public-keys=" + url.QueryEscape(strings.TrimSpace(string(pk))))
				if err != nil {
					t.Fatal(err)
				}
				svc, err := Open(u, blobs, dirs)
				if err != nil {
					t.Fatal(err)
				}
				local := pathinfo.NewMemory()
				c := &Composite{Local: local, Substituters: []pathinfo.Service{svc}}
				for _, w := range want {
					sp, err := storepath.Parse(w.Path)
					if err != nil {
						t.Fatal(err)
					}
					info, err := c.Get(context.Background(), sp.Digest)
					if err != nil {
						t.Fatalf("substitute %s: %v", w.Path, err)
					}
					wh, _ := nixhash.Parse(w.NarHash)
					if !bytes.Equal(info.GetNarinfo().GetNarSha256(), wh.Digest) || len(info.GetNarinfo().GetSignatures()) == 0 {
						t.Fatalf("%s: path info %v, want NarHash %s and a signature", w.Path, info, w.NarHash)
					}
					var got bytes.Buffer
					if err := narcastore.Render(context.Background(), &got, info.GetNode(), blobs, dirs); err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got.Bytes(), nixtest.Run(t, "nix-store", "--dump", w.Path)) {
						t.Fatalf("%s: rendered NAR differs from nix-store --dump", w.Path)
					}
					if _, err := local.Get(context.Background(), sp.Digest); err != nil {
						t.Fatalf("%s not kept locally: %v", w.Path, err)
					}
				}
			})
		}
	}
}
