package nixcache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ulikunitz/xz"

	"github.com/tvix-go/tvix/castore/blobstore"
	"github.com/tvix-go/tvix/castore/dirstore"
	"github.com/tvix-go/tvix/nix/nar"
	"github.com/tvix-go/tvix/nix/narinfo"
	"github.com/tvix-go/tvix/nix/nixbase32"
	"github.com/tvix-go/tvix/nix/nixhash"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/narcastore"
	"github.com/tvix-go/tvix/store/pathinfo"
	"github.com/tvix-go/tvix/store/storev1"
)

func sampleNAR(t *testing.T, content string) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := nar.NewWriter(&buf)
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(w.Directory())
	must(w.Entry([]byte("f")))
	must(w.File(false, uint64(len(content)), strings.NewReader(content)))
	must(w.Entry([]byte("l")))
	must(w.Symlink([]byte("f")))
	must(w.Leave())
	must(w.Close())
	return buf.Bytes()
}

type cacheEntry struct {
	path storepath.StorePath
	nar  []byte
	ni   *narinfo.NarInfo
}

// writeCache writes a file binary cache, xz-compressed and signed by sk,
// the layout `nix copy --to file://…` produces.
func writeCache(t *testing.T, dir string, sk narinfo.SecretKey, contents ...string) []cacheEntry {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "nar"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "nix-cache-info"), []byte("StoreDir: /nix/store\n"), 0o644)
	var out []cacheEntry
	for _, c := range contents {
		n := sampleNAR(t, c)
		ns := sha256.Sum256(n)
		sp, err := storepath.MakeSource("sample", ns[:], nil, false)
		if err != nil {
			t.Fatal(err)
		}
		var file bytes.Buffer
		xw, err := xz.NewWriter(&file)
		if err != nil {
			t.Fatal(err)
		}
		xw.Write(n)
		if err := xw.Close(); err != nil {
			t.Fatal(err)
		}
		fs := sha256.Sum256(file.Bytes())
		nh, _ := nixhash.New(nixhash.SHA256, ns[:])
		fh, _ := nixhash.New(nixhash.SHA256, fs[:])
		ni := &narinfo.NarInfo{StorePath: sp, URL: "nar/" + nixbase32.EncodeToString(fs[:]) + ".nar.xz", Compression: "xz",
			FileHash: &fh, FileSize: uint64(file.Len()), NarHash: nh, NarSize: uint64(len(n))}
		ni.Sign(sk)
		if err := os.WriteFile(filepath.Join(dir, ni.URL), file.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, sp.HashPart()+".narinfo"), []byte(ni.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		out = append(out, cacheEntry{path: sp, nar: n, ni: ni})
	}
	return out
}

func openURL(t *testing.T, raw string) (*Service, *blobstore.Store, *dirstore.Memory) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	blobs, dirs := blobstore.NewMemory(), dirstore.NewMemory()
	s, err := Open(u, blobs, dirs)
	if err != nil {
		t.Fatalf("open %s: %v", raw, err)
	}
	return s, blobs, dirs
}

func TestGet(t *testing.T) {
	sk, pk, _ := narinfo.GenerateKey("cache-1", nil)
	_, other, _ := narinfo.GenerateKey("cache-1", nil)
	dir := t.TempDir()
	entries := writeCache(t, dir, sk, "one", "two")
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	keys := "?trusted-public-keys=" + url.QueryEscape("other:"+strings.SplitN(other.String(), ":", 2)[1]+" "+pk.String())
	for _, base := range []string{"nix+file://" + dir, "nix+" + srv.URL} {
		t.Run(base[:8], func(t *testing.T) {
			s, blobs, dirs := openURL(t, base+keys)
			for _, e := range entries {
				info, err := s.Get(context.Background(), e.path.Digest)
				if err != nil {
					t.Fatalf("get %s: %v", e.path, err)
				}
				if !bytes.Equal(info.GetNarinfo().GetNarSha256(), e.ni.NarHash.Digest) || len(info.GetNarinfo().GetSignatures()) != 1 {
					t.Fatalf("path info %v", info)
				}
				var buf bytes.Buffer
				if err := narcastore.Render(context.Background(), &buf, info.GetNode(), blobs, dirs); err != nil || !bytes.Equal(buf.Bytes(), e.nar) {
					t.Fatalf("rendered NAR differs (%v)", err)
				}
			}
			var missing [20]byte
			if _, err := s.Get(context.Background(), missing); !errors.Is(err, pathinfo.ErrNotFound) {
				t.Fatalf("missing path: %v, want ErrNotFound", err)
			}
			if _, err := s.Put(context.Background(), &storev1.PathInfo{}); !errors.Is(err, ErrUnsupported) {
				t.Fatalf("put: %v", err)
			}
		})
	}
	t.Run("untrusted", func(t *testing.T) {
		s, _, _ := openURL(t, "nix+file://"+dir+"?trusted-public-keys="+url.QueryEscape(other.String()))
		if _, err := s.Get(context.Background(), entries[0].path.Digest); err == nil || errors.Is(err, pathinfo.ErrNotFound) {
			t.Fatalf("narinfo signed by an untrusted key: %v", err)
		}
	})
}

func TestTamperedNAR(t *testing.T) {
	sk, pk, _ := narinfo.GenerateKey("cache-1", nil)
	for _, tc := range []struct {
		name   string
		tamper func(dir string, e cacheEntry)
	}{
		{"NAR replaced by another", func(dir string, e cacheEntry) {
			// A valid NAR of other contents under the same name.
			var file bytes.Buffer
			xw, _ := xz.NewWriter(&file)
			xw.Write(sampleNAR(t, "evil"))
			xw.Close()
			os.WriteFile(filepath.Join(dir, e.ni.URL), file.Bytes(), 0o644)
		}},
		{"NAR missing", func(dir string, e cacheEntry) { os.Remove(filepath.Join(dir, e.ni.URL)) }},
		{"download truncated", func(dir string, e cacheEntry) {
			p := filepath.Join(dir, e.ni.URL)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)/2], 0o644)
		}},
		{"signature corrupt", func(dir string, e cacheEntry) {
			ni := *e.ni
			sig := ni.Signatures[0]
			sig.Data = append([]byte(nil), sig.Data...)
			sig.Data[0] ^= 0xff
			ni.Signatures = []narinfo.Signature{sig}
			os.WriteFile(filepath.Join(dir, e.path.HashPart()+".narinfo"), []byte(ni.String()), 0o644)
		}},
		{"signature missing", func(dir string, e cacheEntry) {
			ni := *e.ni
			ni.Signatures = nil
			os.WriteFile(filepath.Join(dir, e.path.HashPart()+".narinfo"), []byte(ni.String()), 0o644)
		}},
		{"narinfo NarSize changed", func(dir string, e cacheEntry) {
			ni := *e.ni
			ni.NarSize++
			ni.Signatures = nil
			ni.Sign(sk)
			os.WriteFile(filepath.Join(dir, e.path.HashPart()+".narinfo"), []byte(ni.String()), 0o644)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			e := writeCache(t, dir, sk, "one")[0]
			tc.tamper(dir, e)
			s, _, _ := openURL(t, "nix+file://"+dir+"?trusted-public-keys="+url.QueryEscape(pk.String()))
			local := pathinfo.NewMemory()
			c := &Composite{Local: local, Substituters: []pathinfo.Service{s}}
			if _, err := c.Get(context.Background(), e.path.Digest); err == nil || errors.Is(err, pathinfo.ErrNotFound) {
				t.Fatalf("tampered cache: %v, want an error", err)
			}
			if _, err := local.Get(context.Background(), e.path.Digest); !errors.Is(err, pathinfo.ErrNotFound) {
				t.Fatalf("tampered path recorded locally: %v", err)
			}
		})
	}
}

// countingService counts Gets and makes them wait until released.
type countingService struct {
	pathinfo.Service
	gets    atomic.Int32
	release chan struct{}
}

func (c *countingService) Get(ctx context.Context, d [storepath.DigestSize]byte) (*storev1.PathInfo, error) {
	c.gets.Add(1)
	<-c.release
	return c.Service.Get(ctx, d)
}

func TestCompositeFetchesOnce(t *testing.T) {
	sk, _, _ := narinfo.GenerateKey("cache-1", nil)
	dir := t.TempDir()
	e := writeCache(t, dir, sk, "one")[0]
	s, _, _ := openURL(t, "nix+file://"+dir+"?allow-unsigned=true")
	empty, _, _ := openURL(t, "nix+file://"+t.TempDir())
	cs := &countingService{Service: s, release: make(chan struct{})}
	local := pathinfo.NewMemory()
	c := &Composite{Local: local, Substituters: []pathinfo.Service{empty, cs}}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			info, err := c.Get(context.Background(), e.path.Digest)
			if err == nil && !bytes.Equal(info.GetNarinfo().GetNarSha256(), e.ni.NarHash.Digest) {
				err = errors.New("wrong path info")
			}
			errs <- err
		}()
	}
	// Let the callers pile up on the one fetch, then release it.
	for cs.gets.Load() == 0 {
		runtime.Gosched()
	}
	close(cs.release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := local.Get(context.Background(), e.path.Digest); err != nil {
		t.Fatalf("substituted path not stored locally: %v", err)
	}
	before := cs.gets.Load()
	if _, err := c.Get(context.Background(), e.path.Digest); err != nil {
		t.Fatal(err)
	}
	if cs.gets.Load() != before {
		t.Fatal("second Get went to the substituter instead of the local store")
	}
	// Callers arriving after the fetch find the path locally (substitute
	// checks again inside the flight), so there is exactly one fetch.
	if before != 1 {
		t.Fatalf("substituter asked %d times for one path", before)
	}
	var missing [20]byte
	if _, err := c.Get(context.Background(), missing); !errors.Is(err, pathinfo.ErrNotFound) {
		t.Fatalf("path no one has: %v", err)
	}
}

func FuzzOpen(f *testing.F) {
	for _, s := range []string{"nix+https://cache.nixos.org?trusted-public-keys=a:b", "nix+file:///x", "nix+file://host/x", "nix+ftp://x", "nix+http://[::1]:9/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.Parse(raw)
		if err != nil {
			return
		}
		s, err := Open(u, nil, nil)
		if err == nil && s.base.Scheme != "http" && s.base.Scheme != "https" && s.base.Scheme != "file" {
			t.Fatalf("opened %q with scheme %q", raw, s.base.Scheme)
		}
	})
}

func TestUnsignedRefusedUnlessAllowed(t *testing.T) {
	sk, _, _ := narinfo.GenerateKey("cache-1", nil)
	dir := t.TempDir()
	e := writeCache(t, dir, sk, "one")[0]
	s, _, _ := openURL(t, "nix+file://"+dir)
	if _, err := s.Get(context.Background(), e.path.Digest); err == nil || !strings.Contains(err.Error(), "no trusted-public-keys") {
		t.Fatalf("unsigned narinfo without keys: %v", err)
	}
	s, _, _ = openURL(t, "nix+file://"+dir+"?allow-unsigned=true")
	if _, err := s.Get(context.Background(), e.path.Digest); err != nil {
		t.Fatalf("allow-unsigned: %v", err)
	}
}

func TestNotFoundRemembered(t *testing.T) {
	dir := t.TempDir()
	s, _, _ := openURL(t, "nix+file://"+dir+"?allow-unsigned=true")
	var missing [20]byte
	missing[0] = 1
	if _, err := s.Get(context.Background(), missing); !errors.Is(err, pathinfo.ErrNotFound) {
		t.Fatal(err)
	}
	if _, err := s.Get(context.Background(), missing); err == nil || !strings.Contains(err.Error(), "remembered") {
		t.Fatalf("second lookup of a missing path asked the cache again: %v", err)
	}
}
