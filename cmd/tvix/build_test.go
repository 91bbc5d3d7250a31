package main

import (
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tvix-go/tvix/internal/nixtest"
	"github.com/tvix-go/tvix/internal/testenv"
)

// buildCorpus writes derivations built by busybox from a store path: a
// chain of five, several outputs referring to each other and to inputs, a
// fixed output flat and recursive. nonce makes them fresh for this run.
// copyBusybox puts the static busybox at dir/busybox/bin/busybox, for
// expressions in dir to import as ./busybox.
func copyBusybox(t *testing.T, dir string) {
	t.Helper()
	bb := filepath.Join(dir, "busybox", "bin")
	os.MkdirAll(bb, 0o755)
	data, err := os.ReadFile("/bin/busybox")
	if err != nil {
		testenv.Missing(t, "busybox-static needed: %v", err)
	}
	if err := os.WriteFile(filepath.Join(bb, "busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
}

func buildCorpus(t *testing.T, nonce string) string {
	t.Helper()
	dir := t.TempDir()
	copyBusybox(t, dir)
	// The flat fixed output's contents and hash.
	flat := "fixed-contents-" + nonce
	expr := fmt.Sprintf(`
let
  busybox = ./busybox;
  sh = script: extra: derivation ({
    name = "tvix-corpus"; system = builtins.currentSystem;
    builder = "${busybox}/bin/busybox";
    args = [ "sh" "-c" ("export PATH=${busybox}/bin; " + script) ];
    nonce = %q;
  } // extra);
  chain = builtins.foldl' (prev: i: sh "mkdir $out; echo ${toString i} > $out/n; ln -s ${prev} $out/prev" { name = "chain-${toString i}"; })
    (sh "echo start > $out" { name = "chain-0"; }) [ 1 2 3 4 5 ];
in {
  inherit chain;
  multi = sh "mkdir $out $lib $doc; echo $lib > $out/lib; echo ${busybox} > $lib/bb; echo doc > $doc/readme" { name = "multi"; outputs = [ "out" "lib" "doc" ]; };
  flat = sh "echo -n %s > $out" { name = "fixed-flat"; outputHashMode = "flat"; outputHashAlgo = "sha256"; outputHash = builtins.hashString "sha256" %q; };
  recursive = sh "mkdir $out; echo recursive > $out/x" { name = "fixed-recursive"; outputHashMode = "recursive"; outputHashAlgo = "sha256"; outputHash = "%s"; };
  # Reads through chain's reference to the one before it: the sandbox
  # holds the closure of the inputs, not only the inputs.
  uses = sh "cat ${chain}/n ${chain}/prev/n > $out" { name = "uses-chain"; };
}
`, nonce, flat, flat, "RECURSIVE_HASH")
	f := filepath.Join(dir, "corpus.nix")
	// The recursive hash is what Nix computes for that output: build it
	// once with a wrong hash and take the one Nix reports.
	os.WriteFile(f, []byte(strings.Replace(expr, "RECURSIVE_HASH", "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", 1)), 0o644)
	_, err := nixtest.Sandboxed("nix-build", "--no-out-link", f, "-A", "recursive")
	got := ""
	if err != nil {
		if i := strings.Index(err.Error(), "got:"); i >= 0 {
			got = strings.Fields(err.Error()[i+4:])[0]
		}
	}
	if got == "" {
		t.Fatalf("nix-build with a wrong hash: %v", err)
	}
	os.WriteFile(f, []byte(strings.Replace(expr, "RECURSIVE_HASH", got, 1)), 0o644)
	return f
}

// TestBuildCorpusMatchesNixBuild: tvix build gives the same output paths,
// NAR hashes and references as nix-build with Nix's own sandbox, with the
// local sandbox and with MicroVMs.
func TestBuildCorpusMatchesNixBuild(t *testing.T) {
	nixtest.Require(t)
	testenv.Tool(t, "bwrap", "bubblewrap")
	testenv.FUSE(t)
	testenv.Root(t, "builds in a sandbox")
	testenv.Tool(t, "qemu-system-x86_64", "qemu-system-x86")
	f := buildCorpus(t, fmt.Sprint(time.Now().UnixNano()))
	for _, backend := range []string{"sandbox", "microvm"} {
		t.Run(backend, func(t *testing.T) { checkCorpus(t, f, backend) })
	}
}

func checkCorpus(t *testing.T, f, backend string) {
	init, err := testenv.TvixInit()
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"XDG_DATA_HOME=" + t.TempDir(), "TVIX_INIT=" + init}
	for _, attr := range []string{"chain", "multi", "flat", "recursive", "uses"} {
		t.Run(attr, func(t *testing.T) {
			drv := nixtest.Text(t, "nix-instantiate", f, "-A", attr)
			nixOut, err := nixtest.Sandboxed("nix-store", "--realise", drv)
			if err != nil {
				t.Fatalf("nix-store --realise: %v", err)
			}
			out, stderr, err := run(t, env, "build", "--no-out-link", "--backend", backend, "-A", attr, f)
			if err != nil {
				t.Fatalf("tvix build: %v\n%s", err, stderr)
			}
			if strings.Fields(out)[0] != strings.Fields(nixOut)[0] && !strings.Contains(nixOut, strings.Fields(out)[0]) {
				t.Fatalf("tvix build printed %q, nix %q", out, nixOut)
			}
			for _, p := range strings.Fields(nixOut) {
				want := nixtest.Text(t, "nix-store", "-q", "--hash", p)
				got, stderr, err := run(t, env, "store", "query", "--hash", p)
				if err != nil || strings.TrimSpace(got) != want {
					t.Errorf("%s: NAR hash %q (%v %s), nix-build's %s", p, got, err, stderr, want)
				}
				wantRefs := nixtest.Text(t, "nix-store", "-q", "--references", p)
				gotRefs, _, _ := run(t, env, "store", "query", "--references", p)
				if strings.Join(strings.Fields(gotRefs), " ") != strings.Join(strings.Fields(wantRefs), " ") {
					t.Errorf("%s: references %q, nix-build's %q", p, gotRefs, wantRefs)
				}
			}
		})
	}
	// Everything is in the store now: a second build builds nothing.
	_, stderr, err := run(t, env, "build", "--no-out-link", "--backend", backend, "-A", "uses", f)
	if err != nil || strings.Contains(stderr, "building") {
		t.Fatalf("rebuild: %v\n%s", err, stderr)
	}
}

// A failing build and a fixed output with the wrong hash fail with Nix's
// words, the log shown with the derivation's name, and record nothing.
func TestBuildFailureReported(t *testing.T) {
	nixtest.Require(t)
	testenv.Tool(t, "bwrap", "bubblewrap")
	testenv.FUSE(t)
	testenv.Root(t, "builds in a sandbox")
	dir := t.TempDir()
	bb := filepath.Join(dir, "bb", "bin")
	os.MkdirAll(bb, 0o755)
	data, _ := os.ReadFile("/bin/busybox")
	os.WriteFile(filepath.Join(bb, "busybox"), data, 0o755)
	f := filepath.Join(dir, "fail.nix")
	os.WriteFile(f, []byte(`let bb = ./bb; in {
  fails = derivation { name = "fails"; system = builtins.currentSystem; builder = "${bb}/bin/busybox"; args = [ "sh" "-c" "echo about to fail; exit 7" ]; };
  wrong = derivation { name = "wrong"; system = builtins.currentSystem; builder = "${bb}/bin/busybox"; args = [ "sh" "-c" "echo x > $out" ];
    outputHashMode = "flat"; outputHashAlgo = "sha256"; outputHash = builtins.hashString "sha256" "y"; };
}`), 0o644)
	env := []string{"XDG_DATA_HOME=" + t.TempDir()}
	_, stderr, err := run(t, env, "build", "--no-out-link", "-A", "fails", f)
	if err == nil || !strings.Contains(stderr, "builder failed with exit code 7") || !strings.Contains(stderr, "fails> about to fail") {
		t.Fatalf("failing build: %v\n%s", err, stderr)
	}
	_, stderr, err = run(t, env, "build", "--no-out-link", "-A", "wrong", f)
	if err == nil || !strings.Contains(stderr, "hash mismatch in fixed-output derivation") || !strings.Contains(stderr, "got:    sha256-") {
		t.Fatalf("wrong fixed hash: %v\n%s", err, stderr)
	}
	ls, _, _ := run(t, env, "store", "ls")
	for _, line := range strings.Split(ls, "\n") {
		if strings.Contains(line, "-fails\t") || strings.Contains(line, "-wrong\t") {
			t.Fatalf("a failed build was recorded: %s", line)
		}
	}
}

// TestRemoteBuilder: a builder daemon with an empty store builds the
// corpus for a client whose store is another daemon (the orchestrator),
// reading the inputs from the orchestrator as the builds read them; the
// outputs end up in the orchestrator's store, equal to nix-build's.
func TestRemoteBuilder(t *testing.T) {
	nixtest.Require(t)
	testenv.Tool(t, "bwrap", "bubblewrap")
	testenv.FUSE(t)
	testenv.Root(t, "builds in a sandbox")
	f := buildCorpus(t, fmt.Sprint(time.Now().UnixNano()))
	socks, err := os.MkdirTemp("", "tvix-remote-build-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(socks)
	orch, builder := filepath.Join(socks, "orchestrator.sock"), filepath.Join(socks, "builder.sock")
	o := startTvix(t, []string{"XDG_DATA_HOME=" + t.TempDir()}, "daemon", "--listen", "unix://"+orch)
	o.waitFor(t, orch)
	b := startTvix(t, nil, "daemon", "--blob-service-addr", "memory://", "--directory-service-addr", "memory://",
		"--path-info-service-addr", "memory://", "--substituters", "grpc+unix://"+orch, "--build-listen", "unix://"+builder, "--build-jobs", "2")
	b.waitFor(t, builder)
	remote := "grpc+unix://" + orch
	client := []string{"build", "--no-out-link", "--blob-service-addr", remote, "--directory-service-addr", remote,
		"--path-info-service-addr", remote, "--builders", "grpc+unix://" + builder + "?slots=2", "-j", "2"}
	for _, attr := range []string{"uses", "multi"} {
		drv := nixtest.Text(t, "nix-instantiate", f, "-A", attr)
		nixOut, err := nixtest.Sandboxed("nix-store", "--realise", drv)
		if err != nil {
			t.Fatalf("nix-store --realise: %v", err)
		}
		out, stderr, err := run(t, nil, append(client, "-A", attr, f)...)
		if err != nil {
			t.Fatalf("remote build of %s: %v\n%s\nbuilder log:\n%s", attr, err, stderr, b.log.String())
		}
		if !strings.Contains(nixOut, strings.Fields(out)[0]) {
			t.Fatalf("tvix build printed %q, nix %q", out, nixOut)
		}
		for _, p := range strings.Fields(nixOut) {
			want := nixtest.Text(t, "nix-store", "-q", "--hash", p)
			got, stderr, err := run(t, nil, "store", "query", "--hash", "--blob-service-addr", remote, "--directory-service-addr", remote, "--path-info-service-addr", remote, p)
			if err != nil || strings.TrimSpace(got) != want {
				t.Errorf("%s in the orchestrator's store: NAR hash %q (%v %s), nix-build's %s", p, got, err, stderr, want)
			}
		}
		if !strings.Contains(b.log.String(), "build finished") {
			t.Fatalf("the builder daemon built nothing:\n%s", b.log.String())
		}
		// The builder read its inputs from the orchestrator, and says how
		// much it fetched.
		m := regexp.MustCompile(`fetched (\d+) bytes of inputs from upstream`).FindStringSubmatch(stderr)
		if m == nil || m[1] == "0" && attr == "uses" {
			t.Fatalf("no fetch report for %s:\n%s", attr, stderr)
		}
		t.Logf("%s: the builder fetched %s bytes", attr, m[1])
		// The client's status counts what it fetched: the outputs, from the
		// builder.
		if !regexp.MustCompile(`msg="build status" built=\d+ running=0 remaining=0 .*fetched_bytes=[1-9]`).MatchString(stderr) {
			t.Fatalf("no status line with the bytes fetched:\n%s", stderr)
		}
		// The outputs' contents are in the orchestrator's store, not only
		// the builder's: a dump renders the NAR.
		dump, stderr, err := run(t, nil, "store", "dump", "--blob-service-addr", remote, "--directory-service-addr", remote, "--path-info-service-addr", remote, strings.Fields(nixOut)[0])
		if err != nil || len(dump) == 0 {
			t.Fatalf("dump %s from the orchestrator: %v %s", nixOut, err, stderr)
		}
	}
}

// builtin:fetchurl downloads over HTTP with netrc credentials, as
// nix-build does, into the same output; a wrong hash or a 401 fails.
func TestBuildFetchurl(t *testing.T) {
	nixtest.Require(t)
	testenv.Root(t, "builds")
	body := "fetched by builtin:fetchurl " + fmt.Sprint(time.Now().UnixNano()) + "\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "user" || p != "secret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		io.WriteString(w, body)
	}))
	defer srv.Close()
	dir := t.TempDir()
	netrcFile := filepath.Join(dir, "netrc")
	os.WriteFile(netrcFile, []byte("machine 127.0.0.1 login user password secret\n"), 0o600)
	sum := sha256.Sum256([]byte(body))
	// An executable download is hashed as a NAR (recursively).
	exeFile := filepath.Join(dir, "exe")
	os.WriteFile(exeFile, []byte(body), 0o755)
	exeHash := nixtest.Text(t, "nix-hash", "--type", "sha256", exeFile)
	f := filepath.Join(dir, "fetch.nix")
	os.WriteFile(f, []byte(fmt.Sprintf(`{
  ok = import <nix/fetchurl.nix> { url = "%s/file"; sha256 = "%x"; };
  exe = import <nix/fetchurl.nix> { url = "%s/file"; sha256 = "%s"; executable = true; };
  wrong = import <nix/fetchurl.nix> { url = "%s/file"; sha256 = "%064x"; };
}`, srv.URL, sum, srv.URL, exeHash, srv.URL, 1)), 0o644)
	env := []string{"XDG_DATA_HOME=" + t.TempDir()}
	for _, attr := range []string{"ok", "exe"} {
		drv := nixtest.Text(t, "nix-instantiate", f, "-A", attr)
		cmd := exec.Command("nix-store", "--realise", drv)
		cmd.Env = append(os.Environ(), "NIX_CONFIG="+nixtest.SandboxConfig+"\nnetrc-file = "+netrcFile)
		nixOut, err := cmd.Output()
		if err != nil {
			t.Fatalf("nix-store --realise %s: %v", attr, err)
		}
		out, stderr, err := run(t, env, "build", "--no-out-link", "--netrc-file", netrcFile, "-A", attr, f)
		if err != nil || strings.TrimSpace(out) != strings.TrimSpace(string(nixOut)) {
			t.Fatalf("tvix build -A %s: %q %v %s, nix %q", attr, out, err, stderr, nixOut)
		}
		want := nixtest.Text(t, "nix-store", "-q", "--hash", strings.TrimSpace(out))
		got, _, _ := run(t, env, "store", "query", "--hash", strings.TrimSpace(out))
		if strings.TrimSpace(got) != want {
			t.Fatalf("%s: NAR hash %q, nix's %q", attr, got, want)
		}
	}
	if _, stderr, err := run(t, env, "build", "--no-out-link", "--netrc-file", netrcFile, "-A", "wrong", f); err == nil || !strings.Contains(stderr, "hash mismatch in fixed-output derivation") {
		t.Fatalf("wrong hash: %v %s", err, stderr)
	}
	if _, stderr, err := run(t, env, "build", "--no-out-link", "-A", "wrong", f); err == nil || !strings.Contains(stderr, "HTTP error 401") {
		t.Fatalf("without credentials: %v %s", err, stderr)
	}
}

// helloSource is the directory scripts/hello-source/prepare fills.
const helloSource = "/var/cache/tvix-go/hello-source"

// TestBuildHelloFromSource: GNU hello 2.10 from Debian's source, built with
// Debian's toolchain made into store paths, is the same as nix-build's
// (paths, NAR hashes, references), and tvix boot runs the hello tvix built
// in a MicroVM from the tvix store.
func TestBuildHelloFromSource(t *testing.T) {
	nixtest.Require(t)
	testenv.Tool(t, "bwrap", "bubblewrap")
	testenv.FUSE(t)
	testenv.Root(t, "builds in a sandbox")
	testenv.Tool(t, "qemu-system-x86_64", "qemu-system-x86")
	if _, err := os.Stat(filepath.Join(helloSource, ".complete")); err != nil {
		testenv.Missing(t, "GNU hello's source and toolchain not prepared (scripts/hello-source/prepare): %v", err)
	}
	nixOut, err := nixtest.Sandboxed("nix-build", "--no-out-link", helloSource)
	if err != nil {
		t.Fatalf("nix-build: %v", err)
	}
	init, err := testenv.TvixInit()
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"XDG_DATA_HOME=" + t.TempDir(), "TVIX_INIT=" + init}
	start := time.Now()
	out, stderr, err := run(t, env, "build", "--no-out-link", helloSource)
	if err != nil {
		t.Fatalf("tvix build: %v\n%s", err, stderr)
	}
	t.Logf("tvix build of hello and its toolchain: %s", time.Since(start).Round(time.Second))
	hello := strings.TrimSpace(out)
	if hello != nixOut {
		t.Fatalf("tvix build printed %q, nix-build %q", hello, nixOut)
	}
	closure := strings.Fields(nixtest.Text(t, "nix-store", "-qR", hello))
	for _, p := range closure {
		want := nixtest.Text(t, "nix-store", "-q", "--hash", p)
		got, _, err := run(t, env, "store", "query", "--hash", p)
		if err != nil || strings.TrimSpace(got) != want {
			t.Errorf("%s: NAR hash %q (%v), nix-build's %s", p, got, err, want)
		}
		wantRefs := strings.Fields(nixtest.Text(t, "nix-store", "-q", "--references", p))
		out, _, _ := run(t, env, "store", "query", "--references", p)
		gotRefs := strings.Fields(out)
		sort.Strings(wantRefs)
		sort.Strings(gotRefs)
		if !slices.Equal(gotRefs, wantRefs) {
			t.Errorf("%s: references %q, nix-build's %q", p, gotRefs, wantRefs)
		}
	}
	bootOut, stderr, err := run(t, env, "boot", "--run", hello+"/bin/hello")
	if err != nil || !strings.Contains(bootOut, "Hello, world!") {
		t.Fatalf("tvix boot --run hello: %v\n%s\n%s", err, bootOut, stderr)
	}
}
