// Package testenv is how tests ask for what the machine must provide
// (tools, devices, root): under CI=true a missing capability fails the
// test, because a green run must not hide an install step that went
// missing; elsewhere it skips, so a developer without QEMU can still run
// the rest.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// InCI says whether missing capabilities are failures.
func InCI() bool { return os.Getenv("CI") == "true" }

// Missing reports a capability the test needs and does not have.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("CI=true and a required capability is missing: %s", msg)
	}
	t.Skip(msg)
}

// Tool returns the path of a program on PATH, or reports it missing
// (naming hint, e.g. the Debian package, when given).
func Tool(t testing.TB, name, hint string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if hint != "" {
			Missing(t, "%s not found (install %s): %v", name, hint, err)
		} else {
			Missing(t, "%s not found: %v", name, err)
		}
	}
	return p
}

// Tools is Tool for several programs from one package.
func Tools(t testing.TB, hint string, names ...string) {
	t.Helper()
	for _, n := range names {
		Tool(t, n, hint)
	}
}

// Root reports the test missing unless it runs as root.
func Root(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "%s needs root (euid %d)", why, os.Geteuid())
	}
}

// FUSE reports the test missing unless this process can mount FUSE file
// systems: /dev/fuse opens, and either it runs as root or a fusermount
// helper is installed.
func FUSE(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		Missing(t, "FUSE not usable: %v", err)
		return
	}
	f.Close()
	if os.Geteuid() == 0 {
		return
	}
	for _, h := range []string{"fusermount3", "fusermount"} {
		if _, err := exec.LookPath(h); err == nil {
			return
		}
	}
	Missing(t, "FUSE not usable: not root and no fusermount3/fusermount helper")
}

// TvixInit builds the static guest init (cmd/tvix-init) once per test
// process, for tests that boot VMs; the binary lives in a temporary
// directory the caller may remove when the process is done with it.
var TvixInit = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "tvix-init-")
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, "tvix-init")
	cmd := exec.Command("go", "build", "-o", p, "github.com/tvix-go/tvix/cmd/tvix-init")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build tvix-init: %v\n%s", err, out)
	}
	return p, nil
})
