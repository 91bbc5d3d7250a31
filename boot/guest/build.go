package guest

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/tvix-go/tvix/build"
	"github.com/tvix-go/tvix/build/buildv1"
	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/nix/nar"
)

const (
	// BuildRequestFile is where the host puts the BuildRequest in the
	// initramfs.
	BuildRequestFile = "tvix-build-request.pb"
	// BuildPort is the virtio-serial port the result goes back on.
	BuildPort = "tvix.build"
	// buildInputs is where the virtio-fs share of the inputs is mounted;
	// each input is bound from there into the sandbox's writable store.
	buildInputs = "/nix/.inputs"
	// sandboxRoot is the builder's root directory: only build, dev, etc,
	// nix, proc and tmp, as in Nix's sandbox.
	sandboxRoot = "/sandbox"
)

// The result stream on BuildPort: a line "exit N", then for each output
// in request order a line "nar SIZE" followed by SIZE bytes of its NAR, or
// a line "missing".

// runBuild runs the request the host put into the initramfs, as Nix's
// sandbox would (uid 1000, gid 100, hostname localhost, /build, Nix's
// /etc), with /nix/store holding exactly the inputs, and sends the
// outputs back as NARs.
func runBuild(mode Mode) (int, error) {
	raw, err := os.ReadFile("/" + BuildRequestFile)
	if err != nil {
		return 0, fmt.Errorf("read build request: %w", err)
	}
	req := &buildv1.BuildRequest{}
	if err := proto.Unmarshal(raw, req); err != nil {
		return 0, fmt.Errorf("parse build request: %w", err)
	}
	if err := mountStore(mode.Tag, buildInputs); err != nil {
		return 0, err
	}
	if err := setUpSandbox(req); err != nil {
		return 0, err
	}
	marker(ReadyMarkerWith(nil))
	code := runBuilder(req)
	defer unix.Sync()
	port, err := findPort(BuildPort)
	if err != nil {
		return 0, err
	}
	f, err := os.OpenFile(port, os.O_WRONLY, 0)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", port, err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	fmt.Fprintf(w, "exit %d\n", code)
	if code == 0 {
		for _, o := range req.GetOutputs() {
			if err := sendOutput(w, filepath.Join(sandboxRoot, o)); err != nil {
				return 0, err
			}
		}
	}
	if err := w.Flush(); err != nil {
		return 0, fmt.Errorf("send build result: %w", err)
	}
	return code, nil
}

func setUpSandbox(req *buildv1.BuildRequest) error {
	root := sandboxRoot
	for _, d := range []string{"dev", "etc", "proc", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	if err := unix.Mount("proc", filepath.Join(root, "proc"), "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount the sandbox's /proc: %w", err)
	}
	if err := unix.Mount("/dev", filepath.Join(root, "dev"), "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("mount the sandbox's /dev: %w", err)
	}
	if err := unix.Mount("tmpfs", filepath.Join(root, "tmp"), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777"); err != nil {
		return fmt.Errorf("mount the sandbox's /tmp: %w", err)
	}
	store := filepath.Join(root, req.GetInputsDir())
	if err := os.MkdirAll(store, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", store, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1775"); err != nil {
		return fmt.Errorf("mount %s: %w", store, err)
	}
	for _, n := range req.GetInputs() {
		name := string(castore.NodeName(n))
		src, dst := filepath.Join(buildInputs, name), filepath.Join(store, name)
		fi, err := os.Lstat(src)
		if err != nil {
			return fmt.Errorf("input %s: %w", name, err)
		}
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			t, err := os.Readlink(src)
			if err != nil {
				return err
			}
			if err := os.Symlink(t, dst); err != nil {
				return err
			}
			continue
		case fi.IsDir():
			err = os.Mkdir(dst, 0o555)
		default:
			err = os.WriteFile(dst, nil, 0o444)
		}
		if err != nil {
			return fmt.Errorf("input %s: %w", name, err)
		}
		if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind input %s: %w", name, err)
		}
	}
	for _, p := range req.GetScratchPaths() {
		dir := filepath.Join(root, p)
		if dir == store {
			continue
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0700"); err != nil {
			return fmt.Errorf("mount %s: %w", dir, err)
		}
	}
	for _, f := range req.GetAdditionalFiles() {
		p := filepath.Join(root, f.GetPath())
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, f.GetContents(), 0o644); err != nil {
			return err
		}
	}
	// The build user owns the store directory (it creates the outputs
	// there) and the scratch directories with what was written into them.
	if err := os.Lchown(store, build.SandboxUID, build.SandboxGID); err != nil {
		return err
	}
	for _, p := range req.GetScratchPaths() {
		if filepath.Join(root, p) == store {
			continue
		}
		if err := filepath.Walk(filepath.Join(root, p), func(path string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(path, build.SandboxUID, build.SandboxGID)
		}); err != nil {
			return fmt.Errorf("hand /%s to the build user: %w", p, err)
		}
	}
	for name, contents := range build.SandboxEtc() {
		if err := os.WriteFile(filepath.Join(root, "etc", name), []byte(contents), 0o644); err != nil {
			return err
		}
	}
	return unix.Sethostname([]byte("localhost"))
}

func runBuilder(req *buildv1.BuildRequest) int {
	args := req.GetCommandArgs()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = "/" + req.GetWorkingDir()
	for _, e := range req.GetEnvironmentVars() {
		cmd.Env = append(cmd.Env, e.GetKey()+"="+string(e.GetValue()))
	}
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: sandboxRoot, Credential: &syscall.Credential{Uid: build.SandboxUID, Gid: build.SandboxGID}, Setsid: true}
	return exitStatus(cmd.Run(), "builder "+args[0])
}

// sendOutput sends one output's NAR, its size first (dumped twice: the
// output is in memory and small next to the cost of a buffer).
func sendOutput(w io.Writer, path string) error {
	if _, err := os.Lstat(path); err != nil {
		_, err := io.WriteString(w, "missing\n")
		return err
	}
	var n countWriter
	if err := nar.DumpPath(&n, path); err != nil {
		return fmt.Errorf("dump %s: %w", path, err)
	}
	fmt.Fprintf(w, "nar %d\n", int64(n))
	if err := nar.DumpPath(w, path); err != nil {
		return fmt.Errorf("send %s: %w", path, err)
	}
	return nil
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

// findPort finds the device of the virtio-serial port called name.
func findPort(name string) (string, error) {
	ports, _ := filepath.Glob("/sys/class/virtio-ports/*/name")
	for _, p := range ports {
		b, err := os.ReadFile(p)
		if err == nil && strings.TrimSpace(string(b)) == name {
			return "/dev/" + filepath.Base(filepath.Dir(p)), nil
		}
	}
	return "", fmt.Errorf("virtio-serial port %q not found (%d ports)", name, len(ports))
}
