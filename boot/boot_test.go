package boot

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/tvix-go/tvix/castore/blobstore"
	"github.com/tvix-go/tvix/castore/diskimage"
	"github.com/tvix-go/tvix/internal/testenv"
	"github.com/tvix-go/tvix/nbd"
	"github.com/tvix-go/tvix/virtiofs"
)

// testInit is the tvix-init built for these tests.
var testInit string

func TestMain(m *testing.M) {
	p, err := testenv.TvixInit()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	testInit = p
	code := m.Run()
	if p != "" {
		os.RemoveAll(filepath.Dir(p))
	}
	os.Exit(code)
}

// requireVM skips (or under CI fails) when the machine cannot boot VMs.
func requireVM(t *testing.T) {
	t.Helper()
	var missing []string
	if _, err := findQEMU(""); err != nil {
		missing = append(missing, err.Error())
	}
	if _, _, err := findKernel(""); err != nil {
		missing = append(missing, err.Error())
	}
	if _, err := findShell(""); err != nil {
		missing = append(missing, err.Error())
	}
	if testInit == "" {
		missing = append(missing, "tvix-init did not build")
	}
	if len(missing) > 0 {
		testenv.Missing(t, "cannot boot VMs: %s", strings.Join(missing, "; "))
	}
}

// storeTree is a small store: a static busybox, a "hello" and a tiny
// system whose init prints a line and powers off.
func storeTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	bb, err := findShell("")
	if err != nil {
		testenv.Missing(t, "%v", err)
	}
	mk := func(rel, content string, mode os.FileMode) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	src, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	mk("0aaa-busybox/bin/busybox", string(src), 0o555)
	if err := os.Symlink("busybox", filepath.Join(dir, "0aaa-busybox/bin/sh")); err != nil {
		t.Fatal(err)
	}
	mk("1bbb-hello/bin/hello", "#!/nix/store/0aaa-busybox/bin/sh\necho 'Hello, world!'\nexit ${1:-0}\n", 0o555)
	mk("2ccc-tiny-system/init", "#!/nix/store/0aaa-busybox/bin/sh\necho \"tiny system up as pid $$\"\n/nix/store/0aaa-busybox/bin/busybox poweroff -f\n", 0o555)
	mk("3ddd-data/share/doc/readme.txt", "some data\n", 0o444)
	if err := os.Symlink("../share/doc/readme.txt", filepath.Join(dir, "3ddd-data/share/link")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func loopback(t *testing.T, dir string) fuse.RawFileSystem {
	t.Helper()
	root, err := gofs.NewLoopbackRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	return gofs.NewNodeFS(root, &gofs.Options{})
}

func testConfig(t *testing.T, out io.Writer) Config {
	return Config{
		Init: testInit, Stdout: out, Stderr: os.Stderr,
		BootTimeout: 120 * time.Second, Timeout: 240 * time.Second,
		CacheDir: filepath.Join(os.TempDir(), "tvix-boot-test-cache"),
	}
}

func TestBootRunExitCode(t *testing.T) {
	requireVM(t)
	dir := storeTree(t)
	var out bytes.Buffer
	cfg := testConfig(t, &out)
	cfg.FS = loopback(t, dir)
	// The checksum reads the 2 MB busybox through many multi-page FUSE
	// reads; the script's status is the command's.
	cfg.Run = []string{"/nix/store/0aaa-busybox/bin/sh", "-c",
		"/nix/store/0aaa-busybox/bin/busybox md5sum /nix/store/0aaa-busybox/bin/busybox; /nix/store/1bbb-hello/bin/hello 7"}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("boot: %v\noutput:\n%s", err, out.String())
	}
	t.Logf("accel %s, store mounted after %v, total %v; %+v", res.Accel, res.Ready, res.Total, res.Guest)
	var stages []string
	for i, s := range res.Guest {
		stages = append(stages, s.Name)
		if s.At <= 0 || (i > 0 && s.At < res.Guest[i-1].At) {
			t.Errorf("guest stage %s at %v: want increasing uptimes", s.Name, s.At)
		}
	}
	if got := strings.Join(stages, " "); got != "init modules store" {
		t.Errorf("guest stages %q, want init modules store", got)
	}
	if res.Prepare <= 0 || res.Poweroff <= 0 || res.QEMUCPU <= 0 || res.InitramfsBytes <= 0 {
		t.Errorf("timings missing: %+v", res)
	}
	if res.ExitCode != 7 {
		t.Errorf("exit code %d, want 7", res.ExitCode)
	}
	src, err := os.ReadFile(filepath.Join(dir, "0aaa-busybox/bin/busybox"))
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%x  /nix/store/0aaa-busybox/bin/busybox\nHello, world!\n", md5.Sum(src))
	if got := out.String(); got != want {
		t.Errorf("guest output %q, want %q", got, want)
	}
}

// TestBootFind lists the store in the guest (q35, virtio-pci) and compares
// with the tree served.
func TestBootFind(t *testing.T) {
	requireVM(t)
	dir := storeTree(t)
	var want []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, p)
		want = append(want, filepath.Join("/nix/store", rel))
		return nil
	})
	var out bytes.Buffer
	cfg := testConfig(t, &out)
	cfg.FS = loopback(t, dir)
	cfg.Find = true
	cfg.Machine = MachineQ35
	// A disk on q35 (virtio-blk-pci): the init fails unless it appears.
	cfg.Disks = []nbd.Export{{Size: 1 << 20, Data: bytes.NewReader(make([]byte, 1<<20))}}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("boot: %v\noutput:\n%s", err, out.String())
	}
	if res.ExitCode != 0 {
		t.Errorf("find exit code %d", res.ExitCode)
	}
	got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("guest listing:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestBootSystem switch_roots into a tiny system whose init is a busybox
// script that prints a line and powers off.
func TestBootSystem(t *testing.T) {
	requireVM(t)
	dir := storeTree(t)
	var out bytes.Buffer
	cfg := testConfig(t, &out)
	cfg.FS = loopback(t, dir)
	cfg.System = "/nix/store/2ccc-tiny-system/init"
	if _, err := Run(context.Background(), cfg); err != nil {
		t.Fatalf("boot: %v\noutput:\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "tiny system up as pid 1\n") {
		t.Errorf("guest output %q lacks the system's line", out.String())
	}
}

// triggerWriter calls fn once when the output contains word.
type triggerWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	word string
	fn   func()
	done bool
}

func (w *triggerWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if !w.done && strings.Contains(w.buf.String(), w.word) {
		w.done = true
		w.fn()
	}
	return len(p), nil
}

// TestBootServerGone kills the virtiofs server while the guest runs: the
// boot must end with a clear error, not hang.
func TestBootServerGone(t *testing.T) {
	requireVM(t)
	dir := storeTree(t)
	sock := filepath.Join(t.TempDir(), "vfs.sock")
	l, err := virtiofs.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	srvCtx, stopSrv := context.WithCancel(context.Background())
	srvDone := make(chan struct{})
	go func() {
		defer close(srvDone)
		virtiofs.ServeListener(srvCtx, l, loopback(t, dir), virtiofs.Options{})
	}()
	t.Cleanup(func() { stopSrv(); <-srvDone })

	var killedAt time.Time
	w := &triggerWriter{word: "started", fn: func() { killedAt = time.Now(); stopSrv() }}
	cfg := testConfig(t, w)
	cfg.Socket = sock
	cfg.Run = []string{"/nix/store/0aaa-busybox/bin/sh", "-c", "echo started; sleep 600"}
	_, err = Run(context.Background(), cfg)
	if err == nil {
		t.Fatal("boot succeeded although the server went away")
	}
	if killedAt.IsZero() {
		t.Fatalf("guest never started the command: %v\noutput: %s", err, w.buf.String())
	}
	if !strings.Contains(err.Error(), "went away") || !strings.Contains(err.Error(), sock) {
		t.Errorf("error %q does not say the server on %s went away", err, sock)
	}
	if d := time.Since(killedAt); d > 30*time.Second {
		t.Errorf("took %v to notice the server was gone", d)
	}
}

func TestMissingPrerequisites(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no qemu", Config{Run: []string{"/x"}, Socket: "/s", QEMU: filepath.Join(dir, "qemu-system-x86_64")}, "qemu-system-x86_64"},
		{"no kernel", Config{Run: []string{"/x"}, Socket: "/s", QEMU: "/bin/true", Kernel: filepath.Join(dir, "vmlinuz")}, "linux-image-amd64"},
		{"no init", Config{Run: []string{"/x"}, Socket: "/s", QEMU: "/bin/true", Kernel: "/bin/true", Init: filepath.Join(dir, "tvix-init")}, "tvix-init"},
		{"no mode", Config{Socket: "/s"}, "exactly one"},
		{"no store", Config{Find: true}, "socket"},
		{"bad machine", Config{Find: true, Socket: "/s", Machine: "pc"}, "machine"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Run(context.Background(), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
	if _, err := findShell(filepath.Join(dir, "busybox")); err == nil {
		t.Error("findShell of a missing file succeeded")
	}
}

func TestDeadSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	ctx := context.Background()
	err := waitSocket(ctx, sock, 200*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "does not accept") {
		t.Fatalf("waitSocket on a missing socket: %v", err)
	}
	if errors.Is(err, context.Canceled) {
		t.Fatal("wrong error")
	}
}

// BenchmarkBootRun measures boot-to-command (QEMU start to exit) per
// machine type with the default accelerator; scripts/bench-boot compares
// more configurations.
func BenchmarkBootRun(b *testing.B) {
	if _, err := findQEMU(""); err != nil {
		b.Skip(err)
	}
	if _, _, err := findKernel(""); err != nil || testInit == "" {
		b.Skip("no kernel or tvix-init")
	}
	for _, machine := range []string{MachineMicroVM, MachineQ35} {
		b.Run(machine, func(b *testing.B) {
			dir := b.TempDir()
			bb, err := findShell("")
			if err != nil {
				b.Skip(err)
			}
			os.MkdirAll(filepath.Join(dir, "0aaa-busybox/bin"), 0o755)
			src, _ := os.ReadFile(bb)
			os.WriteFile(filepath.Join(dir, "0aaa-busybox/bin/busybox"), src, 0o555)
			root, err := gofs.NewLoopbackRoot(dir)
			if err != nil {
				b.Fatal(err)
			}
			var ready time.Duration
			for i := 0; i < b.N; i++ {
				cfg := Config{
					Init: testInit, Stdout: io.Discard, Machine: machine,
					FS:          gofs.NewNodeFS(root, &gofs.Options{}),
					Run:         []string{"/nix/store/0aaa-busybox/bin/busybox", "true"},
					BootTimeout: 120 * time.Second,
					CacheDir:    filepath.Join(os.TempDir(), "tvix-boot-test-cache"),
				}
				res, err := Run(context.Background(), cfg)
				if err != nil {
					b.Fatal(err)
				}
				ready += res.Ready
			}
			b.ReportMetric(float64(ready.Milliseconds())/float64(b.N), "ms-to-ready/op")
		})
	}
}

func TestCmdlineTooLong(t *testing.T) {
	requireVM(t)
	cfg := testConfig(t, io.Discard)
	cfg.FS = loopback(t, t.TempDir())
	cfg.Run = []string{"/nix/store/x/bin/x", strings.Repeat("a", 3000)}
	_, err := Run(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "2047") {
		t.Fatalf("err = %v, want the command line limit", err)
	}
}

// countWriter cancels once word was seen n times.
type countWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	word   string
	n      int
	cancel context.CancelFunc
}

func (w *countWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Count(w.buf.String(), w.word) >= w.n {
		w.cancel()
	}
	return len(p), nil
}

// TestBootGuestReboot reboots the guest inside one QEMU: the device is
// stopped (GET_VRING_BASE) and restarted on the same vhost-user
// connection, and the second boot must mount and run from the store again.
func TestBootGuestReboot(t *testing.T) {
	requireVM(t)
	dir := storeTree(t)
	script := "#!/nix/store/0aaa-busybox/bin/sh\necho \"system booted\"\n/nix/store/0aaa-busybox/bin/busybox reboot -f\n"
	if err := os.WriteFile(filepath.Join(dir, "4eee-rebooter"), []byte(script), 0o555); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &countWriter{word: "system booted", n: 2, cancel: cancel}
	cfg := testConfig(t, w)
	cfg.FS = loopback(t, dir)
	cfg.System = "/nix/store/4eee-rebooter"
	cfg.AllowReboot = true
	_, err := Run(ctx, cfg)
	w.mu.Lock()
	defer w.mu.Unlock()
	if got := strings.Count(w.buf.String(), "system booted"); got < 2 {
		t.Fatalf("%d boots seen (err %v); output:\n%s", got, err, w.buf.String())
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want the test's cancellation", err)
	}
}

// TestBootDisk boots with a qcow2 image, imported into a blob store, as
// --disk: the guest reads a range of /dev/vda, its checksum matches the
// host's, and only a few of the image's chunks are fetched.
func TestBootDisk(t *testing.T) {
	requireVM(t)
	qemuImg := testenv.Tool(t, "qemu-img", "qemu-utils")
	dir := storeTree(t)
	tmp := t.TempDir()
	raw := make([]byte, 24<<20)
	rand.New(rand.NewSource(6)).Read(raw)
	// A zero stretch, which qcow2 stores as unallocated clusters.
	clear(raw[16<<20 : 20<<20])
	if err := os.WriteFile(filepath.Join(tmp, "disk.raw"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(tmp, "disk.qcow2")
	if out, err := exec.Command(qemuImg, "convert", "-f", "raw", "-O", "qcow2", filepath.Join(tmp, "disk.raw"), img).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v\n%s", err, out)
	}
	ctx := context.Background()
	blobs := blobstore.NewMemory()
	d, size, typ, err := diskimage.Import(ctx, img, blobs)
	if err != nil {
		t.Fatal(err)
	}
	if typ != "qcow2" || size != int64(len(raw)) {
		t.Fatalf("imported a %s image of %d bytes, want qcow2 of %d", typ, size, len(raw))
	}
	disk, err := nbd.OpenBlob(ctx, blobs, d)
	if err != nil {
		t.Fatal(err)
	}
	defer disk.Close()

	// 192 KiB from an odd sector 9 MiB in.
	const skip, count = 18437, 384
	off, n := int64(skip*512), int64(count*512)
	var out bytes.Buffer
	cfg := testConfig(t, &out)
	cfg.FS = loopback(t, dir)
	cfg.Disks = []nbd.Export{disk.Export("")}
	bb := "/nix/store/0aaa-busybox/bin/busybox"
	cfg.Run = []string{bb, "sh", "-c", fmt.Sprintf("%s dd if=/dev/tvix-disk0 bs=512 skip=%d count=%d 2>/dev/null | %s md5sum; %s blockdev --getsize64 /dev/vda", bb, skip, count, bb, bb)}
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("boot: %v\noutput:\n%s", err, out.String())
	}
	want := fmt.Sprintf("%x  -\n%d\n", md5.Sum(raw[off:off+n]), len(raw))
	if out.String() != want {
		t.Errorf("guest output %q, want %q", out.String(), want)
	}
	st := disk.Stats()
	t.Logf("boot %v; guest read %d bytes; fetched %d of %d chunks, %d of %d bytes", res.Total, st.BytesRead, st.ChunksFetched, st.Chunks, st.BytesFetched, st.Size)
	// What the guest read, plus the kernel's partition probe (the first
	// and last sectors) and readahead: a handful of chunks.
	if st.ChunksFetched < 1 || st.BytesFetched > st.Size/4 {
		t.Errorf("fetched %d chunks, %d of %d bytes: want much less than the image", st.ChunksFetched, st.BytesFetched, st.Size)
	}
}

func TestQEMUDiskArgs(t *testing.T) {
	tests := []struct {
		machine, device string
	}{
		{MachineMicroVM, "virtio-blk-device,drive=disk0,serial=disk0"},
		{MachineQ35, "virtio-blk-pci,drive=disk0,serial=disk0"},
	}
	for _, tc := range tests {
		t.Run(tc.machine, func(t *testing.T) {
			args := strings.Join(qemuArgs(qemuSpec{machine: tc.machine, accel: "tcg", cpus: 1, memoryMB: 64,
				kernel: "k", initrd: "i", sock: "/s", tag: "tvix", nbdSock: "/run/x,y.sock", disks: []string{"disk0", "disk1"}}), " ")
			for _, want := range []string{
				"-blockdev driver=nbd,node-name=disk0,server.type=unix,server.path=/run/x,,y.sock,export=disk0,read-only=on",
				"-device " + tc.device,
				"export=disk1,read-only=on",
			} {
				if !strings.Contains(args, want) {
					t.Errorf("QEMU args lack %q:\n%s", want, args)
				}
			}
			mods := modulesFor(tc.machine, true)
			if mods[len(mods)-1] != "virtio_blk" {
				t.Errorf("modules %v lack virtio_blk", mods)
			}
		})
	}
	if m := modulesFor(MachineMicroVM, false); strings.Contains(strings.Join(m, " "), "virtio_blk") {
		t.Errorf("modules %v without disks include virtio_blk", m)
	}
}

func TestDiskConfigErrors(t *testing.T) {
	disk := nbd.Export{Size: 512, Data: bytes.NewReader(make([]byte, 512))}
	tests := []struct {
		name  string
		disks []nbd.Export
		want  string
	}{
		{"too many", []nbd.Export{disk, disk, disk, disk, disk, disk, disk, disk}, "at most"},
		{"empty", []nbd.Export{{Data: bytes.NewReader(nil)}}, "empty"},
		{"no data", []nbd.Export{{Size: 512}}, "no data"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Run(context.Background(), Config{Find: true, Socket: "/s", Disks: tc.disks})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

// TestBootShellScript: input that is not a terminal is a script run
// whole, its first word included and not echoed, and its exit status is
// the boot's.
func TestBootShellScript(t *testing.T) {
	requireVM(t)
	var out bytes.Buffer
	cfg := testConfig(t, &out)
	cfg.FS = loopback(t, storeTree(t))
	cfg.Shell = true
	cfg.Stdin = strings.NewReader("echo first-word-here\n/nix/store/1bbb-hello/bin/hello\nexit 3\n")
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("boot: %v\noutput:\n%s", err, out.String())
	}
	if got, want := out.String(), "first-word-here\nHello, world!\n"; !strings.HasSuffix(got, want) || strings.Contains(got, "echo first") {
		t.Errorf("guest output %q, want it to end %q without the script echoed", got, want)
	}
	if res.ExitCode != 3 {
		t.Errorf("exit code %d, want 3", res.ExitCode)
	}
}
