package narbridge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"google.golang.org/protobuf/proto"

	"github.com/tvix-go/tvix/castore/blobstore"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/castore/dirstore"
	"github.com/tvix-go/tvix/nix/nar"
	"github.com/tvix-go/tvix/nix/narinfo"
	"github.com/tvix-go/tvix/nix/nixbase32"
	"github.com/tvix-go/tvix/nix/nixhash"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/pathinfo"
)

type fixture struct {
	srv  *httptest.Server
	pis  *pathinfo.Memory
	key  narinfo.SecretKey
	pub  narinfo.PublicKey
	h    *Handler
	opts Options
}

// newFixture allows anonymous uploads unless opts say who may upload:
// most tests upload, and those about who may do so use newFixtureExact.
func newFixture(t *testing.T, opts Options) *fixture {
	t.Helper()
	if opts.UploadCredentials == nil && !opts.ReadOnly {
		opts.AllowAnonymousUploads = true
	}
	return newFixtureExact(t, opts)
}

func newFixtureExact(t *testing.T, opts Options) *fixture {
	t.Helper()
	sk, pk, err := narinfo.GenerateKey("test-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if opts.Logger == nil {
		opts.Logger = discardLogger()
	}
	if opts.SigningKey == nil {
		opts.SigningKey = &sk
	}
	pis := pathinfo.NewMemory()
	h := New(blobstore.NewMemory(), dirstore.NewMemory(), pis, opts)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &fixture{srv: srv, pis: pis, key: sk, pub: pk, h: h, opts: opts}
}

func (f *fixture) do(t testing.TB, method, path string, body []byte) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp.StatusCode, b, resp.Header
}

// sampleNAR is a directory with a file, an executable, a symlink and a
// subdirectory, written with the NAR writer.
func sampleNAR(t testing.TB, content string) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := nar.NewWriter(&buf)
	file := func(exec bool, s string) {
		if err := w.File(exec, uint64(len(s)), strings.NewReader(s)); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(w.Directory())
	must(w.Entry([]byte("a")))
	file(false, content)
	must(w.Entry([]byte("bin")))
	must(w.Directory())
	must(w.Entry([]byte("run")))
	file(true, "#!/bin/sh\necho hi\n")
	must(w.Leave())
	must(w.Entry([]byte("link")))
	must(w.Symlink([]byte("a")))
	must(w.Leave())
	must(w.Close())
	return buf.Bytes()
}

func compressed(t testing.TB, ext string, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch ext {
	case "":
		return b
	case ".xz":
		w, err := xz.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	case ".zst":
		w, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	case ".bz2":
		cmd := exec.Command("bzip2", "-c")
		cmd.Stdin = bytes.NewReader(b)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("bzip2 (install bzip2): %v", err)
		}
		return out
	default:
		t.Fatalf("unknown ext %q", ext)
	}
	return buf.Bytes()
}

func sha(b []byte) [32]byte { return sha256.Sum256(b) }

func nb32(h [32]byte) string { return nixbase32.EncodeToString(h[:]) }

// upload is what Nix 2.8 sends: the NAR file, then its narinfo.
type upload struct {
	path    storepath.StorePath
	nar     []byte
	file    []byte
	url     string
	narinfo *narinfo.NarInfo
}

func newUpload(t testing.TB, name, ext string, content string) *upload {
	t.Helper()
	n := sampleNAR(t, content)
	narSum, fileSum := sha(n), sha(compressed(t, ext, n))
	sp, err := storepath.MakeSource(name, narSum[:], nil, false)
	if err != nil {
		t.Fatal(err)
	}
	file := compressed(t, ext, n)
	url := "nar/" + nb32(sha(file)) + ".nar" + ext
	nh, _ := nixhash.New(nixhash.SHA256, narSum[:])
	fh, _ := nixhash.New(nixhash.SHA256, fileSum[:])
	comp := map[string]string{"": "none", ".xz": "xz", ".zst": "zstd", ".bz2": "bzip2"}[ext]
	ca := nixhash.CA{Method: nixhash.Recursive, Hash: nh}
	return &upload{path: sp, nar: n, file: file, url: url, narinfo: &narinfo.NarInfo{
		StorePath: sp, URL: url, Compression: comp, FileHash: &fh, FileSize: uint64(len(file)),
		NarHash: nh, NarSize: uint64(len(n)), CA: &ca,
	}}
}

func TestUploadAndServe(t *testing.T) {
	for _, ext := range []string{"", ".xz", ".zst", ".bz2"} {
		t.Run("ext="+ext, func(t *testing.T) {
			f := newFixture(t, Options{})
			u := newUpload(t, "sample", ext, "hello "+ext)
			ref := newUpload(t, "dep", "", "dependency")
			u.narinfo.References = []storepath.StorePath{ref.path, u.path}
			hash := "/" + u.path.HashPart() + ".narinfo"

			if st, _, _ := f.do(t, "HEAD", hash, nil); st != http.StatusNotFound {
				t.Fatalf("HEAD narinfo before upload: %d, want 404", st)
			}
			if st, _, _ := f.do(t, "HEAD", "/"+u.url, nil); st != http.StatusNotFound {
				t.Fatalf("HEAD %s: %d, want 404", u.url, st)
			}
			if st, b, _ := f.do(t, "PUT", "/"+u.url, u.file); st != http.StatusOK {
				t.Fatalf("PUT NAR: %d %s", st, b)
			}
			// The closure invariant: no narinfo ahead of its references.
			if st, b, _ := f.do(t, "PUT", hash, []byte(u.narinfo.String())); st != http.StatusBadRequest || !strings.Contains(string(b), ref.path.Basename()) {
				t.Fatalf("PUT narinfo before its reference: %d %s, want 400 naming %s", st, b, ref.path.Basename())
			}
			if _, err := f.pis.Get(context.Background(), u.path.Digest); err == nil {
				t.Fatal("path recorded before its reference")
			}
			f.do(t, "PUT", "/"+ref.url, ref.file)
			if st, b, _ := f.do(t, "PUT", "/"+ref.path.HashPart()+".narinfo", []byte(ref.narinfo.String())); st != http.StatusOK {
				t.Fatalf("PUT reference narinfo: %d %s", st, b)
			}
			if st, b, _ := f.do(t, "PUT", hash, []byte(u.narinfo.String())); st != http.StatusOK {
				t.Fatalf("PUT narinfo: %d %s", st, b)
			}
			info, err := f.pis.Get(context.Background(), u.path.Digest)
			if err != nil {
				t.Fatalf("path info not stored: %v", err)
			}
			if got := info.GetNarinfo().GetNarSha256(); !bytes.Equal(got, u.narinfo.NarHash.Digest) {
				t.Fatalf("stored NarHash %x, want %x", got, u.narinfo.NarHash.Digest)
			}
			if got := info.GetNarinfo().GetReferenceNames(); len(got) != 2 || got[0] != ref.path.Basename() {
				t.Fatalf("stored references %v", got)
			}

			st, body, hdr := f.do(t, "GET", hash, nil)
			if st != http.StatusOK || hdr.Get("Content-Type") != "text/x-nix-narinfo" {
				t.Fatalf("GET narinfo: %d %s", st, hdr.Get("Content-Type"))
			}
			ni, err := narinfo.Parse(bytes.NewReader(body))
			if err != nil {
				t.Fatalf("served narinfo does not parse: %v\n%s", err, body)
			}
			if ni.Compression != "none" || !strings.HasPrefix(ni.URL, "nar/tvix-castore/") || ni.FileHash == nil || !ni.FileHash.Equal(u.narinfo.NarHash) || ni.FileSize != u.narinfo.NarSize {
				t.Fatalf("served narinfo:\n%s", body)
			}
			if !ni.NarHash.Equal(u.narinfo.NarHash) || ni.NarSize != u.narinfo.NarSize || ni.CA == nil || ni.CA.String() != u.narinfo.CA.String() {
				t.Fatalf("served narinfo metadata differs:\n%s", body)
			}
			if ok := ni.Verify([]narinfo.PublicKey{f.pub}); len(ok) != 1 {
				t.Fatalf("served narinfo not signed by test-1:\n%s", body)
			}

			st, _, hdr = f.do(t, "HEAD", "/"+ni.URL, nil)
			if st != http.StatusOK || hdr.Get("Content-Length") != strconv.Itoa(len(u.nar)) {
				t.Fatalf("HEAD NAR: %d, Content-Length %q, want %d", st, hdr.Get("Content-Length"), len(u.nar))
			}
			st, got, _ := f.do(t, "GET", "/"+ni.URL, nil)
			if st != http.StatusOK || !bytes.Equal(got, u.nar) {
				t.Fatalf("GET NAR: %d, %d bytes, want the %d uploaded", st, len(got), len(u.nar))
			}
		})
	}
}

func TestNixCacheInfo(t *testing.T) {
	for _, tc := range []struct {
		prio int
		want string
	}{{0, "Priority: 39\n"}, {10, "Priority: 10\n"}} {
		f := newFixture(t, Options{Priority: tc.prio})
		st, b, _ := f.do(t, "GET", "/nix-cache-info", nil)
		if st != 200 || !strings.HasPrefix(string(b), "StoreDir: /nix/store\nWantMassQuery: 1\n") || !strings.HasSuffix(string(b), tc.want) {
			t.Fatalf("nix-cache-info: %d %q", st, b)
		}
	}
}

func TestRefusals(t *testing.T) {
	f := newFixture(t, Options{})
	u := newUpload(t, "sample", ".xz", "x")
	hash := "/" + u.path.HashPart() + ".narinfo"
	wrongSize := *u.narinfo
	wrongSize.NarSize++
	otherHash := "/" + strings.Repeat("0", 32) + ".narinfo"
	garbage := append(append([]byte{}, u.nar...), 0)
	validNode := "nar/tvix-castore/" + "EiIKIA" // truncated: does not decode
	for _, tc := range []struct {
		name, method, path string
		body               []byte
		want               int
	}{
		{"narinfo before NAR", "PUT", hash, []byte(u.narinfo.String()), 400},
		{"NAR with wrong URL hash", "PUT", "/nar/" + nb32(sha([]byte("x"))) + ".nar.xz", u.file, 400},
		{"NAR not a NAR", "PUT", "/nar/" + nb32(sha([]byte("junk"))) + ".nar", []byte("junk"), 400},
		{"data after the NAR", "PUT", "/nar/" + nb32(sha(garbage)) + ".nar", garbage, 400},
		{"unsupported compression", "PUT", "/nar/" + nb32(sha(u.file)) + ".nar.br", u.file, 415},
		{"short URL hash", "PUT", "/nar/abc.nar", u.nar, 400},
		{"the NAR", "PUT", "/" + u.url, u.file, 200},
		{"narinfo with wrong NarSize", "PUT", hash, []byte(wrongSize.String()), 400},
		{"narinfo under another name", "PUT", otherHash, []byte(u.narinfo.String()), 400},
		{"narinfo that does not parse", "PUT", hash, []byte("StorePath: x\n"), 400},
		{"malformed narinfo name", "GET", "/" + strings.Repeat("e", 32) + ".narinfo", nil, 400},
		{"short narinfo name", "GET", "/abc.narinfo", nil, 400},
		{"unknown narinfo", "GET", otherHash, nil, 404},
		{"bad base64", "GET", "/nar/tvix-castore/!!!?narsize=1", nil, 404},
		{"bad proto", "GET", "/" + validNode + "?narsize=1", nil, 404},
		{"huge proto", "GET", "/nar/tvix-castore/" + strings.Repeat("A", 6000) + "?narsize=1", nil, 400},
		{"other NAR", "HEAD", "/nar/" + nb32(sha(u.file)) + ".nar.xz", nil, 404},
		{"DELETE", "DELETE", hash, nil, 405},
		{"unknown path", "GET", "/foo/bar", nil, 404},
		{"the narinfo", "PUT", hash, []byte(u.narinfo.String()), 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if st, b, _ := f.do(t, tc.method, tc.path, tc.body); st != tc.want {
				t.Fatalf("%s %s: %d %s, want %d", tc.method, tc.path, st, b, tc.want)
			}
		})
	}
	info, err := f.pis.Get(context.Background(), u.path.Digest)
	if err != nil {
		t.Fatal(err)
	}
	// A named root node in a NAR URL is refused.
	named, err := proto.Marshal(info.GetNode())
	if err != nil {
		t.Fatal(err)
	}
	if st, _, _ := f.do(t, "GET", "/nar/tvix-castore/"+base64.RawURLEncoding.EncodeToString(named)+"?narsize=1", nil); st != 400 {
		t.Fatalf("named node URL: %d, want 400", st)
	}
	// A narsize smaller than the NAR cuts the response off: the client
	// must see an error rather than a short NAR.
	anon, err := NARURL(info.GetNode(), 1)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(f.srv.URL + "/" + anon)
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Fatal("GET with a wrong narsize succeeded")
	}
	// Missing contents: 404 before anything is sent.
	missingDir := &castorev1.Node{Node: &castorev1.Node_Directory{Directory: &castorev1.DirectoryNode{Digest: bytes.Repeat([]byte{7}, 32), Size: 1}}}
	murl, err := NARURL(missingDir, 100)
	if err != nil {
		t.Fatal(err)
	}
	if st, _, _ := f.do(t, "GET", "/"+murl, nil); st != 404 {
		t.Fatalf("NAR of missing directory: %d, want 404", st)
	}
}

func TestReadOnly(t *testing.T) {
	f := newFixture(t, Options{ReadOnly: true})
	u := newUpload(t, "sample", "", "x")
	if st, _, _ := f.do(t, "PUT", "/"+u.url, u.file); st != http.StatusForbidden {
		t.Fatalf("PUT on read-only: %d", st)
	}
}

func TestPendingTable(t *testing.T) {
	now := time.Unix(1000, 0)
	tb := newPendingTable(2, time.Minute)
	tb.now = func() time.Time { return now }
	mk := func(i byte) *pendingNAR { return &pendingNAR{url: string('a' + i), narSHA256: [32]byte{i}} }
	tb.add(mk(1))
	tb.add(mk(2))
	tb.add(mk(3)) // evicts 1
	if _, ok := tb.lookup("", "b", [32]byte{1}); ok {
		t.Fatal("oldest entry survived beyond the bound")
	}
	if p, ok := tb.lookup("", "zzz", [32]byte{3}); !ok || p.url != "d" {
		t.Fatal("lookup by NAR hash failed")
	}
	now = now.Add(2 * time.Minute)
	if _, ok := tb.lookup("", "c", [32]byte{}); ok || tb.len() != 0 {
		t.Fatalf("expired entries still there: %d", tb.len())
	}
	// Re-adding under the same URL replaces, and the stale queue entry
	// does not remove the new one.
	tb.add(mk(4))
	tb.add(&pendingNAR{url: "e", narSHA256: [32]byte{5}})
	tb.add(mk(6))
	if p, ok := tb.lookup("", "e", [32]byte{}); !ok || p.narSHA256 != [32]byte{5} {
		t.Fatal("replaced entry lost")
	}
	// Another uploader sees none of it, by URL or by hash.
	if _, ok := tb.lookup("addr:10.0.0.2", "e", [32]byte{5}); ok {
		t.Fatal("a NAR uploaded by one client was found for another")
	}
}

func FuzzNARURL(f *testing.F) {
	f.Add("EiIKIA", "1")
	f.Add("", "")
	f.Add("CgIKAA", "10")
	f.Add(strings.Repeat("A", 5000), "3")
	h := New(blobstore.NewMemory(), dirstore.NewMemory(), pathinfo.NewMemory(), Options{Logger: discardLogger()})
	f.Fuzz(func(t *testing.T, b64, size string) {
		for _, m := range []string{"GET", "HEAD"} {
			req := httptest.NewRequest(m, "/nar/tvix-castore/x?narsize=1", nil)
			req.URL.Path = "/nar/tvix-castore/" + b64
			req.URL.RawQuery = "narsize=" + size
			w := httptest.NewRecorder()
			func() {
				defer func() {
					if r := recover(); r != nil && r != http.ErrAbortHandler {
						t.Fatalf("panic: %v", r)
					}
				}()
				h.ServeHTTP(w, req)
			}()
			switch w.Code {
			case 200, 400, 404, 500:
			default:
				t.Fatalf("status %d", w.Code)
			}
		}
	})
}

func TestParseRange(t *testing.T) {
	for _, tc := range []struct {
		spec       string
		start, end int64
		ok         bool
	}{
		{"bytes=0-9", 0, 10, true}, {"bytes=5-", 5, 100, true}, {"bytes=-10", 90, 100, true},
		{"bytes=90-200", 90, 100, true}, {"bytes=100-", 0, 0, false}, {"bytes=5-2", 0, 0, false},
		{"bytes=0-1,3-4", 0, 0, false}, {"items=0-1", 0, 0, false}, {"bytes=x-", 0, 0, false},
	} {
		s, e, ok := parseRange(tc.spec, 100)
		if ok != tc.ok || (ok && (s != tc.start || e != tc.end)) {
			t.Errorf("parseRange(%q) = %d, %d, %v; want %d, %d, %v", tc.spec, s, e, ok, tc.start, tc.end, tc.ok)
		}
	}
}

func TestRangeAndCompressedNAR(t *testing.T) {
	f := newFixture(t, Options{Compression: "zstd"})
	u := newUpload(t, "sample", "", strings.Repeat("range test ", 1000))
	f.do(t, "PUT", "/"+u.url, u.file)
	if st, b, _ := f.do(t, "PUT", "/"+u.path.HashPart()+".narinfo", []byte(u.narinfo.String())); st != http.StatusOK {
		t.Fatalf("PUT narinfo: %d %s", st, b)
	}
	st, body, _ := f.do(t, "GET", "/"+u.path.HashPart()+".narinfo", nil)
	if st != http.StatusOK {
		t.Fatalf("GET narinfo: %d", st)
	}
	ni, err := narinfo.Parse(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ni.Compression != "zstd" || !strings.Contains(ni.URL, ".zst?") {
		t.Fatalf("narinfo advertises %q at %q, want zstd", ni.Compression, ni.URL)
	}
	st, zbody, _ := f.do(t, "GET", "/"+ni.URL, nil)
	if st != http.StatusOK {
		t.Fatalf("GET compressed NAR: %d", st)
	}
	dec, err := zstd.NewReader(bytes.NewReader(zbody))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(dec)
	if err != nil || !bytes.Equal(plain, u.nar) {
		t.Fatalf("decompressed NAR differs (%d vs %d bytes, %v)", len(plain), len(u.nar), err)
	}
	raw := strings.Replace(ni.URL, ".zst?", "?", 1)
	req := httptest.NewRequest("GET", "/"+raw, nil)
	req.Header.Set("Range", "bytes=100-1099")
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	if rec.Code != http.StatusPartialContent || !bytes.Equal(rec.Body.Bytes(), u.nar[100:1100]) {
		t.Fatalf("range GET: %d, %d bytes", rec.Code, rec.Body.Len())
	}
	if cr := rec.Header().Get("Content-Range"); cr != fmt.Sprintf("bytes 100-1099/%d", len(u.nar)) {
		t.Fatalf("Content-Range %q", cr)
	}
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-", len(u.nar)+5))
	rec = httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestedRangeNotSatisfiable {
		t.Fatalf("unsatisfiable range: %d", rec.Code)
	}
}
