package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tvix-go/tvix/internal/nixtest"
)

// TestDaemonEvalEndpoint: a daemon with an empty store and the hello cache
// (built by real Nix) upstream is asked over /eval for the hello
// expression; it answers nix-instantiate's paths and, unless told not to,
// substitutes exactly the closure nix-store -qR lists.
func TestDaemonEvalEndpoint(t *testing.T) {
	dir, hello, key := helloCache(t)
	srv, cc := serveCache(t, dir)
	expr, _ := filepath.Abs("../../scripts/hello/hello.nix")
	wantDrv := nixtest.Text(t, "nix-instantiate", expr)
	wantLibcDrv := nixtest.Text(t, "nix-instantiate", expr, "-A", "libc")
	wantLibc := nixtest.Text(t, "nix-store", "-q", "--outputs", wantLibcDrv)
	wantClosure := strings.Fields(nixtest.Text(t, "nix-store", "-qR", hello))
	sort.Strings(wantClosure)

	sockDir, err := os.MkdirTemp("", "tvix-eval-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(sockDir)
	sock := filepath.Join(sockDir, "eval.sock")
	env := []string{"XDG_DATA_HOME=" + t.TempDir()}
	daemon := startTvix(t, env, "daemon", "--eval-listen", "unix://"+sock,
		"--substituters", "nix+"+srv.URL, "--trusted-public-keys", key)
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	daemon.waitFor(t, sock)
	post := func(body string) (int, map[string]any) {
		t.Helper()
		resp, err := client.Post("http://tvix/eval", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatalf("POST /eval %s: %v", body, err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatalf("POST /eval %s: decode: %v", body, err)
		}
		return resp.StatusCode, out
	}
	jsonStr := func(v any) string { b, _ := json.Marshal(v); return string(b) }

	// Evaluation only: the paths, nothing fetched.
	code, out := post(jsonStr(map[string]any{"file": expr, "attr": []string{"libc"}, "substitute": "none"}))
	if code != 200 {
		t.Fatalf("substitute none: %d %v", code, out)
	}
	if got := jsonStr(out["derivations"]); got != jsonStr([]map[string]any{{"attr": "libc", "drvPath": wantLibcDrv, "outputs": map[string]string{"out": wantLibc}}}) {
		t.Fatalf("derivations %s, nix-instantiate says %s -> %s", got, wantLibcDrv, wantLibc)
	}
	if out["closure"] != nil || cc.count() != 0 {
		t.Fatalf("substitute none fetched %d NARs, closure %v", cc.count(), out["closure"])
	}

	// The whole closure, by expression relative to dir.
	code, out = post(jsonStr(map[string]any{"expr": "import ./hello.nix", "dir": filepath.Dir(expr)}))
	if code != 200 {
		t.Fatalf("eval: %d %v", code, out)
	}
	drvs, _ := out["derivations"].([]any)
	if len(drvs) != 1 {
		t.Fatalf("derivations %v", out["derivations"])
	}
	d := drvs[0].(map[string]any)
	if d["drvPath"] != wantDrv || jsonStr(d["outputs"]) != jsonStr(map[string]string{"out": hello}) {
		t.Fatalf("derivation %v, nix-instantiate says %s with out %s", d, wantDrv, hello)
	}
	if jsonStr(out["paths"]) != jsonStr([]string{hello}) {
		t.Fatalf("paths %v, want [%s]", out["paths"], hello)
	}
	if jsonStr(out["closure"]) != jsonStr(wantClosure) {
		t.Fatalf("closure %v, nix-store -qR says %v", out["closure"], wantClosure)
	}
	if n := cc.count(); n != len(wantClosure) {
		t.Fatalf("fetched %d NARs, want the %d of the closure", n, len(wantClosure))
	}

	// GET with a query works too; the closure is already there.
	resp, err := client.Get("http://tvix/eval?" + url.Values{"file": {expr}}.Encode())
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /eval: %v %v", err, resp)
	}
	resp.Body.Close()
	if n := cc.count(); n != len(wantClosure) {
		t.Fatalf("a second request fetched again (%d NARs)", n)
	}

	// Bad requests and evaluation errors say what was wrong.
	for _, tc := range []struct {
		body, want string
		code       int
	}{
		{`{}`, `exactly one of "expr" and "file"`, 400},
		{`{"file": "hello.nix"}`, "absolute path", 400},
		{`{"expr": "1", "substitute": "some"}`, `substitute "some"`, 400},
		{`{"expr": "1", "nope": 1}`, "unknown field", 400},
		{`{"expr": "derivation { name = \"x\"; builder = \"/bin/sh\"; }"}`, "required attribute 'system' missing", 422},
		{`{"expr": "throw \"no such package\""}`, "no such package", 422},
		{`{"expr": "1"}`, "does not evaluate to a derivation", 422},
	} {
		code, out := post(tc.body)
		if msg, _ := out["error"].(string); code != tc.code || !strings.Contains(msg, tc.want) {
			t.Errorf("POST %s: %d %q, want %d with %q", tc.body, code, msg, tc.code, tc.want)
		}
	}

	// Once the daemon is gone, the store it wrote holds the closure.
	if err := daemon.stop(); err != nil {
		t.Errorf("daemon exit: %v\n%s", err, daemon.log.String())
	}
	got, stderr, err := run(t, env, "store", "query", "--requisites", hello)
	if err != nil {
		t.Fatalf("query: %v %s", err, stderr)
	}
	if strings.Join(strings.Fields(got), " ") != strings.Join(wantClosure, " ") {
		t.Fatalf("store holds %q, nix-store -qR says %q", got, wantClosure)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
}
