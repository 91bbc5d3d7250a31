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

func isMounted(mp string) bool {
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	return bytes.Contains(mounts, []byte(" "+mp+" "))
}

// TestMountCommand imports a tree, mounts the store with `tvix mount`,
// compares, and checks that SIGINT unmounts and busy or non-empty
// mountpoints are refused with a clear message.
func TestMountCommand(t *testing.T) {
	testenv.Root(t, "tvix mount")
	testenv.FUSE(t)
	env := []string{"XDG_DATA_HOME=" + t.TempDir()}
	src := filepath.Join(t.TempDir(), "tree")
	writeTree(t, src, 2<<20)
	out, stderr, err := run(t, env, "store", "import", src)
	if err != nil {
		t.Fatalf("import: %v %s", err, stderr)
	}
	sp := strings.TrimSpace(out)

	nonEmpty := t.TempDir()
	os.WriteFile(filepath.Join(nonEmpty, "x"), nil, 0o644)
	if _, stderr, err := run(t, env, "mount", nonEmpty); err == nil || !strings.Contains(stderr, "not empty") {
		t.Errorf("mount over a non-empty directory: %v, stderr %q", err, stderr)
	}

	mp := t.TempDir()
	unmountAtEnd(t, mp)
	mount := startTvix(t, env, "mount", "--list-root", mp)
	mounted := filepath.Join(mp, filepath.Base(sp))
	mount.waitFor(t, mounted)
	if out, err := exec.Command("diff", "-r", "--no-dereference", src, mounted).CombinedOutput(); err != nil {
		t.Errorf("diff -r against the mount: %v\n%s", err, out)
	}
	if ents, err := os.ReadDir(mp); err != nil || len(ents) != 1 || ents[0].Name() != filepath.Base(sp) {
		t.Errorf("--list-root listing: %v, %v", ents, err)
	}
	// The running mount holds the embedded store's lock; an empty store
	// is enough to see the refusal.
	memory := []string{"BLOB_SERVICE_ADDR=memory://", "DIRECTORY_SERVICE_ADDR=memory://", "PATH_INFO_SERVICE_ADDR=memory://"}
	if _, stderr, err := run(t, memory, "mount", mp); err == nil || !strings.Contains(stderr, "already a mount point") {
		t.Errorf("mount over a mount: %v, stderr %q", err, stderr)
	}

	if err := mount.stop(); err != nil {
		t.Errorf("tvix mount exit after SIGINT: %v\n%s", err, mount.log.String())
	}
	if isMounted(mp) {
		t.Errorf("%s still mounted after SIGINT", mp)
	}
}
