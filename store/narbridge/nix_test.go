package narbridge

import (
	"context"
	"encoding/json"
	"net/http/httptest"
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
	"github.com/tvix-go/tvix/store/pathinfo"
)

type nixPathInfo struct {
	Path       string   `json:"path"`
	NarHash    string   `json:"narHash"`
	NarSize    uint64   `json:"narSize"`
	References []string `json:"references"`
}

func nixPathInfos(t *testing.T, args ...string) map[string]nixPathInfo {
	t.Helper()
	var infos []nixPathInfo
	out := nixtest.Run(t, "nix", append([]string{"path-info", "--json"}, args...)...)
	if err := json.Unmarshal(out, &infos); err != nil {
		t.Fatalf("nix path-info --json: %v\n%s", err, out)
	}
	m := map[string]nixPathInfo{}
	for _, i := range infos {
		m[i.Path] = i
	}
	return m
}

// addPaths puts a tree (file, executable, symlink, subdirectory) into
// the Nix store, a text file referencing it, and builds an input-addressed
// output referencing both (the only kind whose signatures matter: Nix
// accepts content-addressed paths unsigned). It returns tree and output.
func addPaths(t *testing.T) (tree, out string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "narbridge-tree")
	for _, f := range []struct {
		name, content string
		mode          os.FileMode
	}{
		{"a", "hello from " + t.Name() + "\n", 0o644},
		{"bin/run", "#!/bin/sh\necho run\n", 0o755},
		{"empty", "", 0o644},
		{"sub/deeper/x", strings.Repeat("x", 100000), 0o644},
	} {
		p := filepath.Join(dir, f.name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f.content), f.mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("a", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	tree = nixtest.Text(t, "nix-store", "--add", dir)
	expr := `builtins.toFile "narbridge-ref" "uses ${builtins.storePath "` + tree + `"} (` + t.Name() + `)"`
	text := strings.Trim(nixtest.Text(t, "nix-instantiate", "--eval", "--read-write-mode", "-E", expr), `"`)
	drv := `derivation { name = "narbridge-out"; system = builtins.currentSystem; builder = "/bin/sh";
		args = [ "-c" "echo ${builtins.storePath "` + text + `"} > $out" ]; }`
	out = nixtest.Text(t, "nix-build", "--no-out-link", "-E", drv)
	return tree, out
}

// TestNixCopy round-trips store paths through the bridge with C++ Nix:
// `nix copy --to http://…` uploads them (compressed as asked), the
// PathInfos must match what Nix has, and `nix copy --from http://…` into
// a fresh chroot store must verify against the signing key.
func TestNixCopy(t *testing.T) {
	nixtest.Require(t)
	// Nix caches narinfo lookups per cache URL; keep them per test.
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	tree, top := addPaths(t)
	want := nixPathInfos(t, "-r", top)
	if len(want) != 3 {
		t.Fatalf("closure of %s: %v", top, want)
	}
	for _, comp := range []string{"", "none", "zstd", "bzip2"} {
		t.Run("compression="+comp, func(t *testing.T) {
			sk, pk, err := narinfo.GenerateKey("narbridge-test-1", nil)
			if err != nil {
				t.Fatal(err)
			}
			pis := pathinfo.NewMemory()
			srv := httptest.NewServer(New(blobstore.NewMemory(), dirstore.NewMemory(), pis, Options{SigningKey: &sk, Logger: discardLogger(), AllowAnonymousUploads: true}))
			defer srv.Close()
			to := srv.URL
			if comp != "" {
				to += "?compression=" + comp
			}
			nixtest.Run(t, "nix", "copy", "--to", to, top)

			for p, w := range want {
				sp, err := storepath.Parse(p)
				if err != nil {
					t.Fatal(err)
				}
				info, err := pis.Get(context.Background(), sp.Digest)
				if err != nil {
					t.Fatalf("%s not in the bridge after nix copy: %v", p, err)
				}
				wh, err := nixhash.Parse(w.NarHash)
				if err != nil {
					t.Fatal(err)
				}
				if string(info.GetNarinfo().GetNarSha256()) != string(wh.Digest) || info.GetNarinfo().GetNarSize() != w.NarSize {
					t.Fatalf("%s: bridge has NAR %x/%d, Nix %s/%d", p, info.GetNarinfo().GetNarSha256(), info.GetNarinfo().GetNarSize(), w.NarHash, w.NarSize)
				}
				if len(info.GetReferences()) != len(w.References) {
					t.Fatalf("%s: bridge has %d references, Nix %v", p, len(info.GetReferences()), w.References)
				}
			}

			// Nix remembers the narinfos it uploaded, URL and all, and
			// would ask for nar/<file hash>.nar.xz, which only the
			// uploader's cache knows; fetch as another machine would.
			t.Setenv("XDG_CACHE_HOME", t.TempDir())
			root := t.TempDir()
			dst := "local?root=" + root
			_, otherKey, err := narinfo.GenerateKey("narbridge-test-1", nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := nixtest.RunErr("nix", "copy", "--from", srv.URL, "--to", dst,
				"--option", "trusted-public-keys", otherKey.String(), top); err == nil {
				t.Fatal("nix copy --from accepted narinfos signed by an untrusted key")
			}
			nixtest.Run(t, "nix", "copy", "--from", srv.URL, "--to", dst,
				"--option", "trusted-public-keys", pk.String(), top)
			got := nixPathInfos(t, "--store", dst, "-r", top)
			for p, w := range want {
				g, ok := got[p]
				if !ok || g.NarHash != w.NarHash || g.NarSize != w.NarSize {
					t.Fatalf("%s copied back as %+v, want %+v", p, g, w)
				}
			}
			nixtest.Run(t, "nix", "store", "verify", "--store", dst, "--no-trust", "-r", top)
			// The copy is what Nix hashes it to be, independent of its database.
			h := nixtest.Text(t, "nix-hash", "--type", "sha256", "--base32", filepath.Join(root, tree))
			if nh, _ := nixhash.Parse(want[tree].NarHash); nh.Nix32() != h {
				t.Fatalf("copied tree hashes to %s, want %s", h, want[tree].NarHash)
			}
		})
	}
}
