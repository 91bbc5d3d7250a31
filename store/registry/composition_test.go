package registry

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castoretest"
	"github.com/tvix-go/tvix/castore/combined"
	"github.com/tvix-go/tvix/internal/scaletest"
	"github.com/tvix-go/tvix/nix/narinfo"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/nixcache"
	"github.com/tvix-go/tvix/store/pathinfo"
	"github.com/tvix-go/tvix/store/pathinfo/pathinfotest"
)

const memoryRoots = `
[blobservices.root]
type = "memory"
[directoryservices.root]
type = "memory"
`

// Every mistake in a composition file is refused before anything is
// opened, naming the entry and the field.
func TestCompositionErrors(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"no root", `[blobservices.x]
type = "memory"`, "blobservices: no entry named root"},
		{"unknown type", memoryRoots + `[pathinfoservices.root]
type = "sled"`, `pathinfoservices.root: type "sled" unknown (want one of cache, combined, grpc, lru, memory, nix, signing, url)`},
		{"dangling reference", memoryRoots + `[pathinfoservices.root]
type = "cache"
near = "near"
far = "nowhere"
[pathinfoservices.near]
type = "lru"
capacity = 10`, `pathinfoservices.root: far = "nowhere": no pathinfoservices entry of that name (have: near, root)`},
		{"reference to the wrong kind", memoryRoots + `[pathinfoservices.root]
type = "nix"
base_url = "file:///x"
blob_service = "root"
directory_service = "blobs"`, `pathinfoservices.root: directory_service = "blobs": no directoryservices entry of that name`},
		{"field of another type", memoryRoots + `[pathinfoservices.root]
type = "memory"
capacity = 3`, `pathinfoservices.root: field "capacity" does not belong to type memory`},
		{"missing field", memoryRoots + `[pathinfoservices.root]
type = "lru"`, "pathinfoservices.root: type lru needs capacity"},
		{"unknown field", memoryRoots + `[pathinfoservices.root]
type = "memory"
colour = "blue"`, `pathinfoservices.root: unknown field "colour"`},
		{"unknown table", memoryRoots + `[pathinfoservices.root]
type = "memory"
[buildservices.root]
type = "memory"`, `unknown table or key "buildservices`},
		{"cycle", `[blobservices.root]
type = "cache"
near = "a"
far = "root"
[blobservices.a]
type = "memory"
[directoryservices.root]
type = "memory"
[pathinfoservices.root]
type = "memory"`, "blobservices.root: refers to itself: blobservices.root -> blobservices.root"},
		{"not toml", `[blobservices.root`, "expected"},
	} {
		_, err := parseComposition(tc.text)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func openComposition(t *testing.T, text string) *Services {
	t.Helper()
	c, err := ParseComposition(writeFile(t, "store.toml", text))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Default().OpenComposition(context.Background(), c, Substitution{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// A local pack in front of a far store, an LRU in front of a bbolt file
// and a signing layer: each entry is what it says, shared entries are
// opened once, and what is put is signed.
func TestCompositionLayers(t *testing.T) {
	dir := t.TempDir()
	sk, pk, err := narinfo.GenerateKey("test-1", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keyfile := writeFile(t, "key", sk.String())
	s := openComposition(t, `
[blobservices.root]
type = "cache"
near = "near"
far = "far"
[blobservices.near]
type = "url"
url = "pack+file://`+dir+`/blobs"
[blobservices.far]
type = "objectstore"
object_store_url = "file://`+dir+`/far"
[directoryservices.root]
type = "url"
url = "bbolt://`+dir+`/db"
[pathinfoservices.root]
type = "signing"
inner = "cached"
keyfile = "`+keyfile+`"
[pathinfoservices.cached]
type = "cache"
near = "lru"
far = "db"
[pathinfoservices.lru]
type = "lru"
capacity = 2
[pathinfoservices.db]
type = "url"
url = "bbolt://`+dir+`/db"
`)
	if _, ok := s.Blobs.(combined.Blobs); !ok {
		t.Fatalf("blob root is %T, want the near/far cache", s.Blobs)
	}
	castoretest.PutBlob(t, s.Blobs, []byte("hello"), 5)
	if _, err := os.Stat(filepath.Join(dir, "blobs")); err != nil {
		t.Fatalf("near pack store not used: %v", err)
	}
	ctx := context.Background()
	a := pathinfotest.SampleInfo(t, "00bgd045z0d4icpbc2yyz4gx48ak44la-a")
	stored, err := s.PathInfos.Put(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	ni, err := pathinfo.ToNarInfo(stored)
	if err != nil {
		t.Fatal(err)
	}
	if got := ni.Verify([]narinfo.PublicKey{pk}); len(got) != 1 {
		t.Fatalf("put path info not signed by the keyfile's key: %v", ni.Signatures)
	}
	// The cache's Put goes to the near LRU; the far bbolt file is what
	// the near side misses are filled from.
	if _, ok := castore.As[*nixcache.Composite](s.PathInfos); !ok {
		t.Fatalf("path info root %T does not lead to the cache", s.PathInfos)
	}
}

// The roots of every kind on the real S3 server and PostgreSQL, from one
// file: a second store opened from the same file sees what the first put.
func TestCompositionOnS3AndPostgres(t *testing.T) {
	ctx := context.Background()
	s3, pg := scaletest.S3URL(t), scaletest.PGURL(t)
	text := `
[blobservices.root]
type = "url"
url = "` + s3 + `"
[directoryservices.root]
type = "url"
url = "` + pg + `"
[pathinfoservices.root]
type = "url"
url = "` + pg + `"
`
	a := openComposition(t, text)
	d, err := castoretest.PutBlob(t, a.Blobs, castoretest.BlobB, 1<<14)
	if err != nil {
		t.Fatal(err)
	}
	info := pathinfotest.SampleInfo(t, "00bgd045z0d4icpbc2yyz4gx48ak44la-a")
	if _, err := a.PathInfos.Put(ctx, info); err != nil {
		t.Fatal(err)
	}
	b := openComposition(t, text)
	if has, err := b.Blobs.Has(ctx, d); !has || err != nil {
		t.Fatalf("second daemon: blob %s: %v, %v", d, has, err)
	}
	sp, _ := storepath.FromBasename("00bgd045z0d4icpbc2yyz4gx48ak44la-a")
	if _, err := b.PathInfos.Get(ctx, sp.Digest); err != nil {
		t.Fatalf("second daemon: path info: %v", err)
	}
	if _, err := b.PathInfos.Get(ctx, [20]byte{9}); !errors.Is(err, pathinfo.ErrNotFound) {
		t.Fatalf("unknown path: %v", err)
	}
}

// A reference that parses but cannot be opened names its entry too.
func TestCompositionOpenErrorNamesEntry(t *testing.T) {
	c, err := ParseComposition(writeFile(t, "store.toml", memoryRoots+`
[pathinfoservices.root]
type = "url"
url = "bbolt://relative/x"
`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Default().OpenComposition(context.Background(), c, Substitution{})
	if err == nil || !strings.Contains(err.Error(), "pathinfoservices.root: path info service") || !strings.Contains(err.Error(), "store.toml") {
		t.Fatalf("open error: %v", err)
	}
}

// Every toml block of docs/deployment.md is a valid composition file.
func TestDeploymentGuideConfigs(t *testing.T) {
	doc, err := os.ReadFile("../../docs/deployment.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := 0
	for _, part := range strings.Split(string(doc), "```toml\n")[1:] {
		text, _, ok := strings.Cut(part, "```")
		if !ok {
			t.Fatal("unterminated toml block")
		}
		if _, err := parseComposition(text); err != nil {
			t.Errorf("docs/deployment.md block %d: %v\n%s", blocks+1, err, text)
		}
		blocks++
	}
	if blocks < 4 {
		t.Fatalf("found %d toml blocks, want one per deployment", blocks)
	}
}

// The composition parser never panics, and what it accepts has a root of
// each kind whose references all resolve.
func FuzzParseComposition(f *testing.F) {
	f.Add(memoryRoots + "[pathinfoservices.root]\ntype = \"memory\"\n")
	f.Add(memoryRoots + "[pathinfoservices.root]\ntype = \"cache\"\nnear = \"a\"\nfar = \"root\"\n[pathinfoservices.a]\ntype = \"lru\"\ncapacity = 1\n")
	f.Add("[blobservices.root]\ntype = \"objectstore\"\nobject_store_url = \"s3://b\"\n")
	f.Fuzz(func(t *testing.T, text string) {
		c, err := parseComposition(text)
		if err != nil {
			return
		}
		for k := range c.entries {
			if _, ok := c.entries[k]["root"]; !ok {
				t.Fatalf("accepted without a root of %s", compositionTables[k])
			}
			for name, e := range c.entries[k] {
				for _, r := range c.refs(Kind(k), e) {
					if _, ok := c.entries[r.kind][r.name]; !ok {
						t.Fatalf("%s.%s: accepted a dangling %s", compositionTables[k], name, r.field)
					}
				}
			}
		}
	})
}
