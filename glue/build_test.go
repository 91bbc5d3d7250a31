package glue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tvix-go/tvix/boot"
	"github.com/tvix-go/tvix/build"
	"github.com/tvix-go/tvix/build/microvm"
	"github.com/tvix-go/tvix/build/sandbox"
	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/blobstore"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/castore/dirstore"
	"github.com/tvix-go/tvix/internal/nixtest"
	"github.com/tvix-go/tvix/internal/testenv"
	"github.com/tvix-go/tvix/nix/derivation"
	"github.com/tvix-go/tvix/nix/nixbase32"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/importer"
	"github.com/tvix-go/tvix/store/narcastore"
	"github.com/tvix-go/tvix/store/pathinfo"
)

// buildEnv is a busybox input known to both C++ Nix's store and ours.
type buildEnv struct {
	blobs   castore.BlobService
	dirs    castore.DirectoryService
	busybox storepath.StorePath
	node    *castorev1.Node
	dir     string
}

func newBuildEnv(t *testing.T) *buildEnv {
	t.Helper()
	nixtest.Require(t)
	testenv.Tool(t, "bwrap", "bubblewrap")
	testenv.FUSE(t)
	testenv.Root(t, "comparing builds with Nix's sandbox")
	if _, err := os.Stat("/bin/busybox"); err != nil {
		testenv.Missing(t, "busybox-static needed: %v", err)
	}
	dir := t.TempDir()
	bb := filepath.Join(dir, "tvix-build-busybox")
	os.MkdirAll(filepath.Join(bb, "bin"), 0o755)
	data, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bb, "bin", "busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	e := &buildEnv{blobs: blobstore.NewMemory(), dirs: dirstore.NewMemory(), dir: dir}
	sp, info, err := importer.Store{Blobs: e.blobs, Dirs: e.dirs, PathInfo: pathinfo.NewMemory()}.AddRecursive(context.Background(), bb, "")
	if err != nil {
		t.Fatal(err)
	}
	if nixPath := nixtest.Text(t, "nix-store", "--add", bb); nixPath != sp.String() {
		t.Fatalf("busybox input: nix-store --add gives %s, we %s", nixPath, sp)
	}
	e.busybox, e.node = sp, info.GetNode()
	return e
}

// drv writes a derivation whose builder is busybox sh running script,
// instantiates it with Nix and returns its path and parsed contents.
func (e *buildEnv) drv(t *testing.T, name, script, extra string) (string, *derivation.Derivation) {
	t.Helper()
	expr := fmt.Sprintf(`derivation ({
  name = %q; system = builtins.currentSystem;
  builder = "${builtins.storePath %q}/bin/busybox";
  args = [ "sh" "-c" %q ];
} // %s)`, name, e.busybox.String(), "export PATH="+e.busybox.String()+"/bin; "+script, extra)
	f := filepath.Join(e.dir, name+".nix")
	if err := os.WriteFile(f, []byte(expr), 0o644); err != nil {
		t.Fatal(err)
	}
	drvPath := nixtest.Text(t, "nix-instantiate", f)
	b, err := os.ReadFile(drvPath)
	if err != nil {
		t.Fatal(err)
	}
	d, err := derivation.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return drvPath, d
}

// microVM is the MicroVM backend over e's stores, with a tvix-init built
// for the test.
func (e *buildEnv) microVM(t *testing.T) build.Builder {
	t.Helper()
	testenv.Tools(t, "qemu-system-x86", "qemu-system-x86_64")
	tvixInit, err := testenv.TvixInit()
	if err != nil {
		t.Fatal(err)
	}
	return &microvm.MicroVM{Blobs: e.blobs, Dirs: e.dirs, Boot: boot.Config{Init: tvixInit, MemoryMB: 512}}
}

// TestBuildMatchesNixSandbox builds derivations with C++ Nix's sandbox
// and with ours, in the local sandbox and in a MicroVM, and compares each
// output's NAR hash and references.
func TestBuildMatchesNixSandbox(t *testing.T) {
	e := newBuildEnv(t)
	backends := map[string]build.Builder{"sandbox": &sandbox.Sandbox{Blobs: e.blobs, Dirs: e.dirs, ScratchDir: t.TempDir()}}
	if !testing.Short() {
		backends["microvm"] = e.microVM(t)
	}
	nonce := fmt.Sprint(time.Now().UnixNano())
	for _, tc := range []struct{ name, script, extra string }{
		{"file", `echo hello > $out`, `{}`},
		{"tree", `mkdir -p $out/bin $out/share; echo "#!$out/bin/sh" > $out/bin/run; chmod +x $out/bin/run; ln -s $(busybox basename $0) $out/share/argv0; ln -s ` + e.busybox.String() + `/bin/busybox $out/bin/sh; busybox id > $out/share/id; busybox hostname > $out/share/hostname; pwd > $out/share/pwd; echo $HOME $TMPDIR $NIX_STORE $PATH > $out/share/env; ls / > $out/share/root; ls /nix/store | busybox wc -l > $out/share/store-entries; cat /etc/passwd /etc/group /etc/hosts > $out/share/etc`, `{}`},
		{"outputs", `mkdir $out $dev; echo out > $out/name; echo $out > $dev/out-path`, `{ outputs = [ "out" "dev" ]; }`},
		{"structured", `out=$(sed -n 's/.*"out":"\([^"]*\)".*/\1/p' /build/.attrs.json); dev=$(sed -n 's/.*"dev":"\([^"]*\)".*/\1/p' /build/.attrs.json); mkdir $out $dev; cp /build/.attrs.json /build/.attrs.sh $out/; env | sort | grep -v SHLVL > $out/env; echo dev > $dev/x`,
			`{ __structuredAttrs = true; outputs = [ "out" "dev" ]; str = "a 'quoted' \"s\" $x <&>"; num = 42; flt = 1.5; yes = true; no = false; nul = null; list = [ "a" "b" 3 ]; mixed = [ "a" { } ]; set = { k = "v"; n = 1; }; "not-a-var" = "x"; }`},
		{"passasfile", `cp $greetingPath $out; echo "[$greeting]" >> $out`, `{ greeting = "passed as a file"; passAsFile = [ "greeting" ]; }`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			drvPath, d := e.drv(t, "tvix-build-"+tc.name, tc.script, strings.TrimSuffix(tc.extra, "}")+` nonce = "`+nonce+`"; }`)
			outs, err := nixtest.Sandboxed("nix-store", "--realise", drvPath)
			if err != nil {
				t.Fatalf("nix-store --realise: %v", err)
			}
			req, err := BuildRequest(d, []*castorev1.Node{e.node}, runtime.NumCPU())
			if err != nil {
				t.Fatal(err)
			}
			for backend, b := range backends {
				var log bytes.Buffer
				res, err := b.Build(context.Background(), req, &log)
				if err != nil {
					t.Fatalf("%s build: %v\nlog:\n%s", backend, err, log.String())
				}
				for i, o := range req.GetOutputs() {
					nixOut := "/" + o
					if !strings.Contains(outs, nixOut) {
						t.Fatalf("output %s not among nix-build's %q", nixOut, outs)
					}
					wantHash := nixtest.Text(t, "nix-store", "-q", "--hash", nixOut)
					size, sum, err := narcastore.CalculateNAR(context.Background(), castore.RenameNode(res.GetOutputs()[i], nil), e.blobs, e.dirs)
					if err != nil {
						t.Fatal(err)
					}
					if got := "sha256:" + nixbase32.EncodeToString(sum[:]); got != wantHash {
						t.Errorf("%s, %s: NAR hash %s (%d bytes), nix-build's %s", backend, nixOut, got, size, wantHash)
					}
					var refs []string
					for _, n := range res.GetOutputsNeedles()[i].GetNeedles() {
						needle := req.GetRefscanNeedles()[n]
						for _, cand := range append(append([]string{}, req.GetOutputs()...), storepath.StoreDir[1:]+"/"+e.busybox.Basename()) {
							if strings.HasPrefix(strings.TrimPrefix(cand, "nix/store/"), needle) {
								refs = append(refs, "/"+cand)
							}
						}
					}
					sort.Strings(refs)
					want := strings.Fields(nixtest.Text(t, "nix-store", "-q", "--references", nixOut))
					sort.Strings(want)
					if strings.Join(refs, " ") != strings.Join(want, " ") {
						t.Errorf("%s, %s: references %v, nix-build's %v", backend, nixOut, refs, want)
					}
				}
			}
		})
	}
}

// Builds that fail, run too long or write no output report it, and
// nothing of theirs is kept.
func TestBuildFailures(t *testing.T) {
	e := newBuildEnv(t)
	for _, tc := range []struct {
		name, script string
		timeout      time.Duration
		want         string
		timedOut     bool
	}{
		{"exit", `echo failing on purpose >&2; exit 3`, 0, "builder failed with exit code 3", false},
		{"timeout", `busybox sleep 60`, 2 * time.Second, "timed out", true},
		{"no-output", `echo nothing`, 0, "failed to produce output path", false},
		{"outside", `echo x > /nix/store/not-an-output; mkdir $out`, 0, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, d := e.drv(t, "tvix-build-fail-"+tc.name, tc.script, `{}`)
			req, err := BuildRequest(d, []*castorev1.Node{e.node}, runtime.NumCPU())
			if err != nil {
				t.Fatal(err)
			}
			var log bytes.Buffer
			scratch := t.TempDir()
			sb := &sandbox.Sandbox{Blobs: e.blobs, Dirs: e.dirs, ScratchDir: scratch, Timeout: tc.timeout}
			res, err := sb.Build(context.Background(), req, &log)
			if tc.want == "" {
				// Writing beside the outputs is harmless: only the
				// outputs are read back.
				if err != nil || len(res.GetOutputs()) != 1 {
					t.Fatalf("build: %v %v", res, err)
				}
				return
			}
			var f *build.Failure
			if !errors.As(err, &f) || !strings.Contains(f.Message, tc.want) || f.TimedOut != tc.timedOut {
				t.Fatalf("build: %v, want a failure %q (timed out %v)\nlog:\n%s", err, tc.want, tc.timedOut, log.String())
			}
			if tc.name == "exit" && !strings.Contains(log.String(), "failing on purpose") {
				t.Fatalf("log lost the builder's stderr: %q", log.String())
			}
			if left, _ := os.ReadDir(scratch); len(left) != 0 {
				t.Fatalf("scratch directory keeps %d entries after a failed build", len(left))
			}
		})
	}
}

// A build ends when its builder does, even while something else holds its
// input mount busy (in CI: a sandbox started beside it at the same moment):
// a failure must be able to stop the builds beside it, not wait for them.
func TestBuildEndsWhileInputMountHeld(t *testing.T) {
	e := newBuildEnv(t)
	scratch := t.TempDir()
	sb := &sandbox.Sandbox{Blobs: e.blobs, Dirs: e.dirs, ScratchDir: scratch}
	_, d := e.drv(t, "tvix-held-mount", `echo started; busybox sleep 2; exit 1`, `{ nonce = "`+fmt.Sprint(time.Now().UnixNano())+`"; }`)
	req, err := BuildRequest(d, []*castorev1.Node{e.node}, 1)
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	buildDone := make(chan error, 1)
	go func() {
		_, err := sb.Build(context.Background(), req, &signalWriter{needle: "started", seen: started})
		buildDone <- err
	}()
	<-started
	mps, _ := filepath.Glob(filepath.Join(scratch, "tvix-build-*", "inputs"))
	if len(mps) != 1 {
		t.Fatalf("input mounts of the running build: %v", mps)
	}
	holder := exec.Command("sh", "-c", `cd "$1" && echo in && exec sleep 20`, "sh", mps[0])
	in := make(chan struct{})
	holder.Stdout = &signalWriter{needle: "in", seen: in}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	var holderErr error
	held := make(chan struct{})
	go func() { holderErr = holder.Wait(); close(held) }()
	defer func() { holder.Process.Kill(); <-held }()
	select {
	case <-in:
	case <-held:
		t.Fatalf("holding the input mount: %v", holderErr)
	}
	select {
	case err := <-buildDone:
		var f *build.Failure
		if !errors.As(err, &f) {
			t.Fatalf("the failing build: %v, want a build failure", err)
		}
	case <-held:
		t.Fatal("the failing build only ended once its input mount was let go")
	}
	if left, _ := filepath.Glob(filepath.Join(scratch, "tvix-build-*")); len(left) != 0 {
		t.Fatalf("scratch directory keeps %v after the build", left)
	}
}

// signalWriter closes seen when needle was written.
type signalWriter struct {
	needle string
	seen   chan struct{}
	buf    strings.Builder
	once   sync.Once
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.needle) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(p), nil
}

// A MicroVM build that fails reports the exit code and keeps the
// builder's output in the log; a missing output is named.
func TestMicroVMBuildFailures(t *testing.T) {
	if testing.Short() {
		t.Skip("boots VMs")
	}
	e := newBuildEnv(t)
	vm := e.microVM(t)
	for _, tc := range []struct{ name, script, want string }{
		{"exit", `echo failing on purpose >&2; exit 3`, "builder failed with exit code 3"},
		{"no-output", `echo nothing`, "failed to produce output path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, d := e.drv(t, "tvix-vm-fail-"+tc.name, tc.script, `{}`)
			req, err := BuildRequest(d, []*castorev1.Node{e.node}, 1)
			if err != nil {
				t.Fatal(err)
			}
			var log bytes.Buffer
			_, err = vm.Build(context.Background(), req, &log)
			var f *build.Failure
			if !errors.As(err, &f) || !strings.Contains(f.Message, tc.want) {
				t.Fatalf("build: %v, want a failure %q\nlog:\n%s", err, tc.want, log.String())
			}
			if tc.name == "exit" && !strings.Contains(log.String(), "failing on purpose") {
				t.Fatalf("log lost the builder's stderr: %q", log.String())
			}
		})
	}
}

// A request naming an input whose contents the store lacks fails before
// the build starts, naming the input.
func TestBuildMissingInput(t *testing.T) {
	e := newBuildEnv(t)
	_, d := e.drv(t, "tvix-build-missing-input", `echo hi > $out`, `{}`)
	gone := &castorev1.Node{Node: &castorev1.Node_File{File: &castorev1.FileNode{
		Name: []byte("00000000000000000000000000000000-gone"), Digest: make([]byte, 32), Size: 3}}}
	req, err := BuildRequest(d, []*castorev1.Node{e.node, gone}, 1)
	if err != nil {
		t.Fatal(err)
	}
	sb := &sandbox.Sandbox{Blobs: e.blobs, Dirs: e.dirs, ScratchDir: t.TempDir()}
	if _, err := sb.Build(context.Background(), req, nil); err == nil || !strings.Contains(err.Error(), "input 00000000000000000000000000000000-gone: blob") {
		t.Fatalf("missing input: %v", err)
	}
}
