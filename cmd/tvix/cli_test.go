package main

import (
	"bytes"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	builtTvix string
	buildErr  error
)

// tvixBinary builds the command once per test run, without the race
// detector, so integration tests move real amounts of data quickly.
func tvixBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tvix-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtTvix = filepath.Join(dir, "tvix")
		out, err := exec.Command("go", "build", "-o", builtTvix, ".").CombinedOutput()
		if err != nil {
			buildErr = err
			t.Logf("%s", out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build tvix: %v", buildErr)
	}
	return builtTvix
}

// run runs tvix with a private data directory and returns stdout.
func run(t *testing.T, env []string, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(tvixBinary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

func TestHelpListsCommands(t *testing.T) {
	out, _, err := run(t, nil, "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"castore", "daemon"} {
		if !strings.Contains(out, "   "+c) {
			t.Errorf("--help does not list %s:\n%s", c, out)
		}
	}
	for _, want := range []string{"--store (or TVIX_STORE)", "override it one service at a time", "tvix help COMMAND [SUBCOMMAND]"} {
		if !strings.Contains(out, want) {
			t.Errorf("--help does not say %q:\n%s", want, out)
		}
	}
	out, _, err = run(t, nil, "--version")
	if err != nil || !strings.HasPrefix(out, "tvix version ") {
		t.Fatalf("--version = %q, %v", out, err)
	}
}

func writeTree(t *testing.T, root string, big int) {
	t.Helper()
	rng := rand.New(rand.NewSource(7))
	data := make([]byte, big)
	rng.Read(data)
	for p, content := range map[string][]byte{
		"big": data, "x/y/z/small": []byte("hello"), "x/empty": nil, "x/exe": []byte("#!/bin/sh\necho hi\n"),
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(root, "x/exe"), 0o755)
	os.Mkdir(filepath.Join(root, "emptydir"), 0o755)
	os.Symlink("x/y", filepath.Join(root, "link"))
	os.Symlink("/dangling/abs", filepath.Join(root, "x/dangling"))
}

// TestCastoreRoundTripEmbeddedAndDaemon follows the README: import into
// the embedded default store, export byte-identical, then serve the same
// store from a daemon to a second process.
func TestCastoreRoundTripEmbeddedAndDaemon(t *testing.T) {
	data := t.TempDir()
	env := []string{"XDG_DATA_HOME=" + data}
	src := filepath.Join(t.TempDir(), "tree")
	writeTree(t, src, 200<<20)

	out, stderr, err := run(t, env, "castore", "import", src)
	if err != nil {
		t.Fatalf("import: %v\n%s", err, stderr)
	}
	fields := strings.Fields(out)
	if len(fields) < 3 || fields[1] != "directory" {
		t.Fatalf("import printed %q", out)
	}
	digest := fields[2]
	dst := filepath.Join(t.TempDir(), "out")
	if _, stderr, err := run(t, env, "castore", "export", digest, dst); err != nil {
		t.Fatalf("export: %v\n%s", err, stderr)
	}
	if out, err := exec.Command("diff", "-r", "--no-dereference", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("diff -r: %v\n%s", err, out)
	}

	sock := filepath.Join(t.TempDir(), "tvix.sock")
	daemon := startTvix(t, env, "daemon", "--listen", "unix://"+sock)
	daemon.waitFor(t, sock)

	// The embedded store is held by the daemon: a second process is told so at once.
	start := time.Now()
	_, stderr, err = run(t, env, "castore", "ls", digest)
	if err == nil || !strings.Contains(stderr, "store in use by another process") {
		t.Fatalf("second process on the held store: err %v, stderr %q", err, stderr)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("second process took %s to fail", time.Since(start))
	}
	remote := []string{"BLOB_SERVICE_ADDR=grpc+unix://" + sock, "DIRECTORY_SERVICE_ADDR=grpc+unix://" + sock, "PATH_INFO_SERVICE_ADDR=grpc+unix://" + sock}
	out, stderr, err = run(t, remote, "castore", "ls", digest, "x")
	if err != nil {
		t.Fatalf("ls via daemon: %v\n%s\ndaemon: %s", err, stderr, daemon.log.String())
	}
	for _, want := range []string{"dangling\tsymlink -> /dangling/abs", "empty\tfile", "exe\tfile", "executable", "y\tdirectory"} {
		if !strings.Contains(out, want) {
			t.Errorf("ls via daemon lacks %q:\n%s", want, out)
		}
	}
	dst2 := filepath.Join(t.TempDir(), "out2")
	if _, stderr, err := run(t, remote, "castore", "export", digest, dst2); err != nil {
		t.Fatalf("export via daemon: %v\n%s", err, stderr)
	}
	if out, err := exec.Command("diff", "-r", "--no-dereference", src, dst2).CombinedOutput(); err != nil {
		t.Fatalf("diff -r after export via daemon: %v\n%s", err, out)
	}
}

func TestBadServiceAddress(t *testing.T) {
	_, stderr, err := run(t, []string{"BLOB_SERVICE_ADDR=bogus://x"}, "castore", "ls", "b3:AAAA")
	if err == nil || !strings.Contains(stderr, "unknown scheme") {
		t.Fatalf("bogus address: %v %q", err, stderr)
	}
}
