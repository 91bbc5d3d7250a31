package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tvix-go/tvix/internal/testenv"
)

// TestDaemonMount imports a tree as a store path, mounts the store from the
// daemon and compares the mounted path with the original.
func TestDaemonMount(t *testing.T) {
	testenv.FUSE(t)
	env := []string{"XDG_DATA_HOME=" + t.TempDir()}
	src := filepath.Join(t.TempDir(), "tree")
	writeTree(t, src, 5<<20)
	out, stderr, err := run(t, env, "store", "import", src)
	if err != nil {
		t.Fatalf("import: %v %s", err, stderr)
	}
	sp := strings.TrimSpace(out)
	mp := t.TempDir()
	unmountAtEnd(t, mp)
	daemon := startTvix(t, env, "daemon", "--mount", mp)
	mounted := filepath.Join(mp, filepath.Base(sp))
	daemon.waitFor(t, filepath.Join(mounted, "x"))
	if out, err := exec.Command("diff", "-r", "--no-dereference", src, mounted).CombinedOutput(); err != nil {
		t.Fatalf("diff -r against the mount: %v\n%s", err, out)
	}
	if err := daemon.stop(); err != nil {
		t.Fatalf("daemon exit: %v\n%s", err, daemon.log.String())
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if bytes.Contains(mounts, []byte(" "+mp+" ")) {
		t.Fatalf("%s still mounted after the daemon stopped", mp)
	}
}
