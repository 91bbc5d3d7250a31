package importer

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/blobstore"
	"github.com/tvix-go/tvix/castore/combined"
	"github.com/tvix-go/tvix/castore/dirstore"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/closure"
	"github.com/tvix-go/tvix/store/pathinfo"
)

const crashChildEnv = "TVIX_TEST_IMPORT_THEN_CRASH"

// hidesSync is the bug this test guards against: a decorator that
// forwards the BlobService methods but drops Sync.
type hidesSync struct{ castore.BlobService }

// TestMain lets the test binary act as the importing process that is
// killed right after its PathInfo is recorded.
func TestMain(m *testing.M) {
	if spec := os.Getenv(crashChildEnv); spec != "" {
		importThenCrash(spec)
	}
	os.Exit(m.Run())
}

// importThenCrash imports a tree into the embedded store layered under a
// read-through wrapper (as behind a grpc+ substituter), prints the store
// path and dies by SIGKILL: nothing after the PathInfo put may help.
func importThenCrash(spec string) {
	mode, dir, _ := strings.Cut(spec, ":")
	ctx := context.Background()
	near, err := blobstore.NewPack(filepath.Join(dir, "packs"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var blobs castore.BlobService = combined.Blobs{Near: near, Far: blobstore.NewMemory()}
	if mode == "hidden" {
		blobs = hidesSync{blobs}
	}
	dirs, err := dirstore.NewBolt(filepath.Join(dir, "db.bolt"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	pis, err := pathinfo.NewBolt(filepath.Join(dir, "db.bolt"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	sp, _, err := Store{Blobs: blobs, Dirs: dirs, PathInfo: pis}.AddRecursive(ctx, filepath.Join(dir, "src"), "")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println(sp)
	os.Stdout.Sync()
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

// Blobs are durable before the PathInfo that names them, also through a
// read-through wrapper: after a kill -9 right after the import recorded
// its PathInfo, every blob it names is in the store. A wrapper that hides
// Sync loses them, which shows the test sees the difference.
func TestWrappedStoreDurableBeforePathInfo(t *testing.T) {
	for _, tc := range []struct {
		mode        string
		wantIntact  bool
		description string
	}{
		{"forwarded", true, "combined.Blobs forwards Sync to its near store"},
		{"hidden", false, "a wrapper without Sync"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(dir, "src")
			os.MkdirAll(filepath.Join(src, "sub"), 0o755)
			for i := 0; i < 20; i++ {
				body := strings.Repeat(fmt.Sprintf("file %d of the crash test\n", i), 1000*(i+1))
				if err := os.WriteFile(filepath.Join(src, "sub", fmt.Sprintf("f%02d", i)), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), crashChildEnv+"="+tc.mode+":"+dir)
			out, err := cmd.Output()
			if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("child: %v (want killed)\n%s", err, out)
			}
			sp, err := storepath.Parse(strings.TrimSpace(string(out)))
			if err != nil {
				t.Fatalf("child printed %q: %v", out, err)
			}

			ctx := context.Background()
			blobs, err := blobstore.NewPack(filepath.Join(dir, "packs"))
			if err != nil {
				t.Fatal(err)
			}
			defer blobs.Close()
			dirs, err := dirstore.NewBolt(filepath.Join(dir, "db.bolt"))
			if err != nil {
				t.Fatal(err)
			}
			defer dirs.Close()
			pis, err := pathinfo.NewBolt(filepath.Join(dir, "db.bolt"))
			if err != nil {
				t.Fatal(err)
			}
			defer pis.Close()
			st := closure.Store{Blobs: blobs, Dirs: dirs, PathInfos: pis}
			info, err := st.Lookup(ctx, sp)
			if err != nil {
				t.Fatalf("the PathInfo did not survive: %v", err)
			}
			err = closure.CheckPresent(ctx, st, castore.RenameNode(info.GetNode(), nil))
			if tc.wantIntact && err != nil {
				t.Fatalf("%s: the PathInfo survived the kill but its contents did not: %v", tc.description, err)
			}
			if !tc.wantIntact && err == nil {
				t.Fatalf("%s: contents survived; the test cannot tell a lost Sync from a kept one", tc.description)
			}
		})
	}
}
