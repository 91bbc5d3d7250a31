// Package nixtest runs the C++ Nix binaries (nix-bin) as the oracle in
// tests: it finds them, fails under CI=true when they are missing (skips
// otherwise), and runs them with a configuration that works as root
// without a daemon, sandbox or substituters.
package nixtest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tvix-go/tvix/internal/testenv"
)

// Config is the NIX_CONFIG every invocation gets.
const Config = "build-users-group =\nsandbox = false\nsubstituters =\nexperimental-features = nix-command"

// Require fails (CI) or skips the test unless the Nix tools are on PATH.
func Require(t testing.TB) {
	t.Helper()
	testenv.Tools(t, "nix-bin", "nix-store", "nix-hash", "nix", "nix-instantiate", "nix-build")
}

// Env is the environment a Nix command gets: ours plus Config.
func Env() []string { return append(os.Environ(), "NIX_CONFIG="+Config) }

// Run runs a Nix command and returns its stdout; a non-zero exit fails
// the test with stderr.
func Run(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	out, err := RunErr(name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return out
}

// Text is Run with the output trimmed of surrounding white space.
func Text(t testing.TB, name string, args ...string) string {
	t.Helper()
	return strings.TrimSpace(string(Run(t, name, args...)))
}

// RunIn is Run in directory dir, which relative paths in -E expressions
// and file arguments are resolved against.
func RunIn(t testing.TB, dir, name string, args ...string) []byte {
	t.Helper()
	cmd := Command(name, args...)
	cmd.Dir = dir
	out, err := output(cmd)
	if err != nil {
		t.Fatalf("%s %s (in %s): %v", name, strings.Join(args, " "), dir, err)
	}
	return out
}

// RunErr is Run that returns the error (stderr included) instead.
func RunErr(name string, args ...string) ([]byte, error) { return RunInput(nil, name, args...) }

// RunInput is RunErr with stdin.
func RunInput(stdin []byte, name string, args ...string) ([]byte, error) {
	cmd := Command(name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	return output(cmd)
}

// Command is the command Run runs, for a caller that needs what Run does
// not offer (combined output, a stdout file).
func Command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = Env()
	return cmd
}

func output(cmd *exec.Cmd) ([]byte, error) {
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, &cmdError{err: err, stderr: strings.TrimSpace(stderr.String())}
	}
	return out, nil
}

type cmdError struct {
	err    error
	stderr string
}

func (e *cmdError) Error() string { return e.err.Error() + ": " + e.stderr }
func (e *cmdError) Unwrap() error { return e.err }

// BuildInputAddressed builds a tiny input-addressed path (Nix trusts
// content-addressed paths without signatures, which would make signature
// checks vacuous). nonce makes it a fresh path, so signatures from other
// runs are not on it.
func BuildInputAddressed(t *testing.T, nonce string) string {
	t.Helper()
	if _, err := os.Stat("/bin/busybox"); err != nil {
		testenv.Missing(t, "busybox-static needed: %v", err)
	}
	expr := filepath.Join(t.TempDir(), "drv.nix")
	if err := os.WriteFile(expr, []byte(`derivation {
  name = "narinfo-cache-test"; system = builtins.currentSystem; builder = "/bin/busybox";
  args = [ "sh" "-c" "/bin/busybox mkdir -p $out/bin && echo `+nonce+` > $out/data && /bin/busybox ln -s ../data $out/bin/link" ];
}`), 0o644); err != nil {
		t.Fatal(err)
	}
	return Text(t, "nix-build", "--no-out-link", expr)
}

// SandboxConfig is Config with Nix's build sandbox on: what builds are
// compared against (as root, Nix 2.8's sandbox works here).
const SandboxConfig = "build-users-group =\nsandbox = true\nsubstituters =\nexperimental-features = nix-command"

// Sandboxed runs a Nix command with SandboxConfig and returns its
// trimmed stdout, or the error with stderr.
func Sandboxed(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "NIX_CONFIG="+SandboxConfig)
	out, err := output(cmd)
	return strings.TrimSpace(string(out)), err
}
