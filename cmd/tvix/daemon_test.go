package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// A mount namespace made while the daemon's mount existed (a sandbox, an
// unshare: other users' builds make them all the time) keeps a copy of
// the mount, and with it the kernel's connection: the daemon used to wait
// for that namespace to end before exiting on SIGINT.
func TestDaemonStopsWhileAnotherNamespaceHoldsTheMount(t *testing.T) {
	testenv.FUSE(t)
	unshare := testenv.Tool(t, "unshare", "util-linux")
	mp := t.TempDir()
	unmountAtEnd(t, mp)
	daemon := startTvix(t, []string{"XDG_DATA_HOME=" + t.TempDir()}, "daemon", "--mount", mp)
	daemon.waitForFunc(t, "mount at "+mp, func() bool { return isMounted(mp) })
	holder := exec.Command(unshare, "--mount", "--propagation", "private", "sleep", "120")
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	// The copy holds the mount once unshare made it private; until then
	// our unmount would propagate to it.
	daemon.waitForFunc(t, "a private copy of the mount in another namespace", func() bool {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", holder.Process.Pid))
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, " "+mp+" ") && !strings.Contains(l, "shared:") {
				return true
			}
		}
		return false
	})
	start := time.Now()
	if err := daemon.stop(); err != nil {
		t.Fatalf("daemon stopping while another namespace holds its mount: %v after %s\n%s", err, time.Since(start), daemon.log.String())
	}
	// Whether the copy kept the connection alive is the kernel's business
	// (it does not always); when it did, the daemon says so.
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", holder.Process.Pid))
	held := bytes.Contains(b, []byte(" "+mp+" "))
	if warned := strings.Contains(daemon.log.String(), "another mount namespace still holds the mount"); held && !warned {
		t.Errorf("the daemon (stopped after %s) did not say why it stopped waiting:\n%s", time.Since(start), daemon.log.String())
	}
	t.Logf("stopped in %s; the copy held the mount: %v", time.Since(start).Round(time.Millisecond), held)
}
