package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestNixInstantiateVersionAndEvalHelp: the nix-instantiate symlink answers
// --version as scripts probe it, and each evaluator command's --help names
// the command the user typed.
func TestNixInstantiateVersionAndEvalHelp(t *testing.T) {
	link := filepath.Join(t.TempDir(), "nix-instantiate")
	if err := os.Symlink(tvixBinary(t), link); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(link, "--version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "nix-instantiate (tvix) ") {
		t.Fatalf("nix-instantiate --version = %q, %v", out, err)
	}
	for _, c := range []struct{ cmd, want string }{
		{"eval", "usage: tvix eval "}, {"instantiate", "usage: tvix instantiate "},
	} {
		out, stderr, err := run(t, nil, c.cmd, "--help")
		if err != nil || !strings.HasPrefix(out, c.want) {
			t.Errorf("tvix %s --help = %q (%s), %v; want it to start %q", c.cmd, out, stderr, err, c.want)
		}
	}
	if out, _, _ := run(t, nil, "eval", "--help"); !strings.Contains(out, "evaluate and print (implied here)") {
		t.Errorf("tvix eval --help does not say --eval is implied:\n%s", out)
	}
}

// TestSuccessIsSaid: copy, verify and ls say what they did, copy tells
// copied paths from present ones, and no progress \r reaches a log.
func TestSuccessIsSaid(t *testing.T) {
	dir, hello, key := helloCache(t)
	env := []string{"XDG_DATA_HOME=" + t.TempDir()}
	from := "nix+file://" + dir
	_, stderr, err := run(t, env, "store", "copy", hello, "--from", from, "--trusted-public-keys", key)
	if err != nil || !strings.Contains(stderr, "copied 2 paths (0 already present)") {
		t.Fatalf("first copy: %v\n%s", err, stderr)
	}
	_, stderr, err = run(t, env, "store", "copy", hello, "--from", from, "--trusted-public-keys", key)
	if err != nil || !strings.Contains(stderr, "copied 2 paths (2 already present)") {
		t.Fatalf("second copy: %v\n%s", err, stderr)
	}
	_, stderr, err = run(t, env, "store", "verify", "--check-contents")
	if err != nil || !strings.Contains(stderr, "verified 2 paths: all present, contents (") {
		t.Fatalf("verify --check-contents: %v\n%s", err, stderr)
	}
	_, stderr, err = run(t, env, "store", "verify")
	if err != nil || !strings.Contains(stderr, "verified 2 paths: all present") {
		t.Fatalf("verify: %v\n%s", err, stderr)
	}
	out, stderr, err := run(t, env, "store", "ls")
	if err != nil || len(strings.Split(strings.TrimSpace(out), "\n")) != 2 || !strings.Contains(stderr, "2 store paths, ") {
		t.Fatalf("store ls: %v\n%s\n%s", err, out, stderr)
	}
	if strings.Contains(stderr, "\r") {
		t.Fatalf("\\r in a non-terminal's stderr: %q", stderr)
	}
}

// TestMisleadingErrorsNameWhatWasTyped: a wrong --from is reported as
// --from (with the scheme it needs), a missing cache directory is said.
func TestMisleadingErrorsNameWhatWasTyped(t *testing.T) {
	env := []string{"XDG_DATA_HOME=" + t.TempDir()}
	cache := t.TempDir()
	sp := "/nix/store/00000000000000000000000000000000-x"
	_, stderr, err := run(t, env, "store", "copy", "--from", "file://"+cache, sp)
	if err == nil || !strings.Contains(stderr, `--from "file://`+cache+`"`) || strings.Contains(stderr, "--substituters") ||
		!strings.Contains(stderr, "(a Nix binary cache is nix+file://"+cache+")") {
		t.Errorf("copy --from file://: %v %q", err, stderr)
	}
	_, stderr, err = run(t, env, "store", "copy", "--from", "nix+file:///nonexistent/cache", "--allow-unsigned-substitutes", sp)
	if err == nil || !strings.Contains(stderr, `--from "nix+file:///nonexistent/cache"`) || !strings.Contains(stderr, "no such file or directory") {
		t.Errorf("copy --from a missing directory: %v %q", err, stderr)
	}
	_, stderr, err = run(t, env, "store", "ls", "--substituters", "nix+file:///nonexistent/cache", "--allow-unsigned-substitutes")
	if err == nil || !strings.Contains(stderr, `--substituters "nix+file:///nonexistent/cache"`) {
		t.Errorf("--substituters with a missing directory: %v %q", err, stderr)
	}
}

// TestBootSaysOnTheHostWhatIsMissing: boot -E of an output the store
// lacks fails before any VM starts, naming the path.
func TestBootSaysOnTheHostWhatIsMissing(t *testing.T) {
	env := []string{"XDG_DATA_HOME=" + t.TempDir()}
	expr := `derivation { name = "never-built"; builder = "/bin/sh"; system = "x86_64-linux"; marker = "` + t.TempDir() + `"; }`
	start := time.Now()
	_, stderr, err := run(t, env, "boot", "-E", expr, "--run", "bin/x", "--qemu", "/nonexistent/qemu")
	if err == nil || !strings.Contains(stderr, "the store lacks 1 path of the closure of /nix/store/") ||
		!strings.Contains(stderr, "-never-built") || strings.Contains(stderr, "qemu") {
		t.Fatalf("boot of a missing output: %v %q", err, stderr)
	}
	if time.Since(start) > 20*time.Second {
		t.Errorf("took %s: the check is to come before booting", time.Since(start))
	}
	_, stderr, err = run(t, env, "boot", "-E", expr, "--run", "bin/x", "--qemu", "/nonexistent/qemu",
		"--substituters", "nix+file://"+t.TempDir(), "--allow-unsigned-substitutes")
	if err == nil || !strings.Contains(stderr, "the store and its --substituters lack 1 path of the closure of /nix/store/") {
		t.Fatalf("boot of an output no substituter has: %v %q", err, stderr)
	}
	dir := t.TempDir()
	_, stderr, err = run(t, env, "boot", "--dir", dir, "-E", expr, "--run", "bin/x", "--qemu", "/nonexistent/qemu")
	if err == nil || !strings.Contains(stderr, "--dir "+dir+" lacks ") {
		t.Fatalf("boot --dir of a missing output: %v %q", err, stderr)
	}
}

// TestDaemonListenCreatesParents: the README's set-up command with
// XDG_DATA_HOME pointing elsewhere, so nothing has created
// ~/.local/share/tvix for the socket.
func TestDaemonListenCreatesParents(t *testing.T) {
	home := t.TempDir()
	env := []string{"HOME=" + home, "XDG_DATA_HOME=" + filepath.Join(t.TempDir(), "elsewhere")}
	sock := filepath.Join(home, ".local/share/tvix/tvix.sock")
	d := startTvix(t, env, "daemon", "--listen", "unix://"+sock)
	d.waitFor(t, sock)
	if fi, err := os.Stat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("%s: %v %v", sock, fi, err)
	}
}

// TestDaemonLogsUploads: a path imported into a daemon over gRPC shows in
// the daemon's log, one line per path.
func TestDaemonLogsUploads(t *testing.T) {
	env := []string{"XDG_DATA_HOME=" + t.TempDir()}
	sock := filepath.Join(t.TempDir(), "tvix.sock")
	d := startTvix(t, env, "daemon", "--listen", "unix://"+sock)
	d.waitFor(t, sock)
	src := filepath.Join(t.TempDir(), "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "f"), []byte("upload me"), 0o644)
	out, stderr, err := run(t, env, "store", "import", src, "--store", "unix://"+sock)
	if err != nil {
		t.Fatalf("import via the daemon: %v %s", err, stderr)
	}
	if err := d.stop(); err != nil {
		t.Fatalf("daemon: %v", err)
	}
	if want := `msg="received upload" path=` + strings.TrimSpace(out); !strings.Contains(d.log.String(), want) {
		t.Fatalf("daemon log lacks %q:\n%s", want, d.log.String())
	}
}
