package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDaemonMount imports a tree as a store path, mounts the store from the
// daemon and compares the mounted path with the original.
func TestDaemonMount(t *testing.T) {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("/dev/fuse is required under CI")
		}
		t.Skip("no /dev/fuse")
	}
	env := []string{"XDG_DATA_HOME=" + t.TempDir()}
	src := filepath.Join(t.TempDir(), "tree")
	writeTree(t, src, 5<<20)
	out, stderr, err := run(t, env, "store", "import", src)
	if err != nil {
		t.Fatalf("import: %v %s", err, stderr)
	}
	sp := strings.TrimSpace(out)
	mp := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	daemon := exec.CommandContext(ctx, tvixBinary(t), "daemon", "--mount", mp)
	daemon.Env = append(os.Environ(), env...)
	var dlog bytes.Buffer
	daemon.Stderr = &dlog
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			daemon.Process.Signal(os.Interrupt)
			daemon.Wait()
			exec.Command("umount", "-l", mp).Run()
		}
	}()
	mounted := filepath.Join(mp, filepath.Base(sp))
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(mounted, "x")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("mount did not show %s; daemon log:\n%s", mounted, dlog.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if out, err := exec.Command("diff", "-r", "--no-dereference", src, mounted).CombinedOutput(); err != nil {
		t.Fatalf("diff -r against the mount: %v\n%s", err, out)
	}
	daemon.Process.Signal(os.Interrupt)
	if err := daemon.Wait(); err != nil {
		t.Fatalf("daemon exit: %v\n%s", err, dlog.String())
	}
	stopped = true
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if bytes.Contains(mounts, []byte(" "+mp+" ")) {
		t.Fatalf("%s still mounted after the daemon stopped", mp)
	}
}
