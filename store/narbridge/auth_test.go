package narbridge

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tvix-go/tvix/internal/nixtest"
	"github.com/tvix-go/tvix/nix/narinfo"
	"github.com/tvix-go/tvix/nix/storepath"
)

func (f *fixture) doAuth(t *testing.T, method, path string, body []byte, auth string) int {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestUploadsOffByDefault: a handler told nothing about uploaders refuses
// every PUT but still serves reads.
func TestUploadsOffByDefault(t *testing.T) {
	f := newFixtureExact(t, Options{})
	u := newUpload(t, "sample", "", "x")
	if st, _, _ := f.do(t, "PUT", "/"+u.url, u.file); st != http.StatusForbidden {
		t.Fatalf("NAR PUT with uploads off: %d, want 403", st)
	}
	if st, _, _ := f.do(t, "PUT", "/"+u.path.HashPart()+".narinfo", []byte(u.narinfo.String())); st != http.StatusForbidden {
		t.Fatalf("narinfo PUT with uploads off: %d, want 403", st)
	}
	if st, _, _ := f.do(t, "GET", "/nix-cache-info", nil); st != http.StatusOK {
		t.Fatalf("GET nix-cache-info: %d", st)
	}
}

func TestUploadCredentials(t *testing.T) {
	creds, err := ParseCredentials(strings.NewReader("# uploaders\nalice:s3cret\n\nbob:hunter2:with:colons\n"))
	if err != nil {
		t.Fatal(err)
	}
	f := newFixtureExact(t, Options{UploadCredentials: creds})
	u := newUpload(t, "sample", "", "x")
	basic := func(u, p string) string {
		r, _ := http.NewRequest("GET", "/", nil)
		r.SetBasicAuth(u, p)
		return r.Header.Get("Authorization")
	}
	for _, tc := range []struct{ name, auth string }{
		{"none", ""},
		{"wrong password", basic("alice", "s3cre")},
		{"other user's password", basic("alice", "hunter2:with:colons")},
		{"unknown user", basic("eve", "s3cret")},
		{"bad bearer", "Bearer nope"},
		{"garbage", "Basic !!!"},
	} {
		if st := f.doAuth(t, "PUT", "/"+u.url, u.file, tc.auth); st != http.StatusUnauthorized {
			t.Errorf("NAR PUT with %s credentials: %d, want 401", tc.name, st)
		}
	}
	if st := f.doAuth(t, "PUT", "/"+u.url, u.file, basic("bob", "hunter2:with:colons")); st != http.StatusOK {
		t.Fatalf("NAR PUT as bob: %d", st)
	}
	// The NAR was bob's: alice cannot commit it, bob can, with a Bearer
	// token as well as with Basic.
	ni := []byte(u.narinfo.String())
	hash := "/" + u.path.HashPart() + ".narinfo"
	if st := f.doAuth(t, "PUT", hash, ni, basic("alice", "s3cret")); st != http.StatusBadRequest {
		t.Fatalf("narinfo PUT by alice for bob's NAR: %d, want 400", st)
	}
	if st := f.doAuth(t, "PUT", hash, ni, "Bearer hunter2:with:colons"); st != http.StatusOK {
		t.Fatalf("narinfo PUT by bob (Bearer): %d", st)
	}

	for _, bad := range []string{"", "# nobody\n", "alice\n", ":pw\n", "alice:\n"} {
		if _, err := ParseCredentials(strings.NewReader(bad)); err == nil {
			t.Errorf("credentials %q accepted", bad)
		}
	}
}

// TestNixCopyNetrc: Nix uploads with the credentials of its netrc-file,
// and without them gets 401.
func TestNixCopyNetrc(t *testing.T) {
	nixtest.Require(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	dir := t.TempDir()
	authFile := filepath.Join(dir, "uploaders")
	if err := os.WriteFile(authFile, []byte("nix:copy-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	creds, err := LoadCredentials(authFile)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixtureExact(t, Options{UploadCredentials: creds})
	p := nixtest.BuildInputAddressed(t, t.Name())

	netrc := filepath.Join(dir, "netrc")
	write := func(pw string) {
		if err := os.WriteFile(netrc, []byte("machine 127.0.0.1 login nix password "+pw+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("wrong")
	out, err := nixtest.RunErr("nix", "copy", "--option", "netrc-file", netrc, "--to", f.srv.URL, p)
	if err == nil || !strings.Contains(string(out)+err.Error(), "401") {
		t.Fatalf("nix copy with a wrong password: err %v, output %s; want a 401", err, out)
	}
	write("copy-secret")
	nixtest.Run(t, "nix", "copy", "--option", "netrc-file", netrc, "--to", f.srv.URL, p)
	if _, err := f.pis.Get(t.Context(), mustParse(t, p).Digest); err != nil {
		t.Fatalf("%s not in the bridge after an authenticated nix copy: %v", p, err)
	}
}

func mustParse(t *testing.T, p string) storepath.StorePath {
	t.Helper()
	sp, err := storepath.Parse(p)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

// TestOverwriteRefused: a second upload of an existing path with other
// contents gets 409 and changes nothing served; one that agrees is a
// no-op that adds its signatures.
func TestOverwriteRefused(t *testing.T) {
	f := newFixture(t, Options{})
	first := newUpload(t, "victim", "", "the original")
	// Input-addressed: the path does not name its contents.
	first.narinfo.CA = nil
	sp, err := storepath.FromBasename(strings.Repeat("1", 32) + "-victim")
	if err != nil {
		t.Fatal(err)
	}
	first.narinfo.StorePath = sp
	hash := "/" + sp.HashPart() + ".narinfo"
	uploaderKey, _, err := narinfo.GenerateKey("uploader-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	first.narinfo.Sign(uploaderKey)
	f.do(t, "PUT", "/"+first.url, first.file)
	if st, b, _ := f.do(t, "PUT", hash, []byte(first.narinfo.String())); st != http.StatusOK {
		t.Fatalf("first narinfo: %d %s", st, b)
	}

	evil := newUpload(t, "victim", ".xz", "replaced")
	evil.narinfo.CA, evil.narinfo.StorePath = nil, sp
	f.do(t, "PUT", "/"+evil.url, evil.file)
	st, b, _ := f.do(t, "PUT", hash, []byte(evil.narinfo.String()))
	if st != http.StatusConflict || !strings.Contains(string(b), "NarHash differs") {
		t.Fatalf("narinfo replacing an existing path: %d %s, want 409 naming NarHash", st, b)
	}
	info, err := f.pis.Get(t.Context(), sp.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(info.GetNarinfo().GetNarSha256(), first.narinfo.NarHash.Digest) {
		t.Fatal("a refused upload replaced the path's contents")
	}

	// Another client uploading the same path (its own signature).
	other := *first.narinfo
	other.Signatures = nil
	otherKey, _, err := narinfo.GenerateKey("other-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	other.Sign(otherKey)
	f.do(t, "PUT", "/"+first.url, first.file)
	if st, b, _ := f.do(t, "PUT", hash, []byte(other.String())); st != http.StatusOK {
		t.Fatalf("agreeing narinfo: %d %s", st, b)
	}
	info, err = f.pis.Get(t.Context(), sp.Digest)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range info.GetNarinfo().GetSignatures() {
		names = append(names, s.GetName())
	}
	if strings.Join(names, ",") != "uploader-1,other-1" {
		t.Fatalf("signatures after two agreeing uploads: %v", names)
	}
}

// An upload that stops sending fails after BodyIdleTimeout, and one
// client cannot have more than MaxUploadsPerClient uploads running.
func TestStalledUploads(t *testing.T) {
	f := newFixture(t, Options{BodyIdleTimeout: 300 * time.Millisecond, MaxUploadsPerClient: 1})
	u := newUpload(t, "trickle", "", "x")
	pr, pw := io.Pipe()
	defer pw.Close()
	done := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("PUT", f.srv.URL+"/"+u.url, pr)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- -1
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	pw.Write(u.file[:10])
	time.Sleep(100 * time.Millisecond)
	if st, _, _ := f.do(t, "PUT", "/"+u.url, u.file); st != http.StatusTooManyRequests {
		t.Fatalf("second upload while one runs: %d, want 429", st)
	}
	select {
	case st := <-done:
		if st == http.StatusOK {
			t.Fatal("a stalled upload succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a stalled upload was not ended")
	}
	if st, b, _ := f.do(t, "PUT", "/"+u.url, u.file); st != http.StatusOK {
		t.Fatalf("upload after the stalled one ended: %d %s", st, b)
	}
}
