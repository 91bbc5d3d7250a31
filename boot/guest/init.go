//go:build linux

package guest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Paths inside the initramfs, written by the host's initramfs builder.
const (
	ModuleDir   = "/lib/modules"
	ModuleOrder = ModuleDir + "/tvix.order" // one .ko file name per line, load order
	ShellPath   = "/bin/sh"
	StoreDir    = "/nix/store"
	sysroot     = "/sysroot"
)

// Main is PID 1: it sets the machine up, does what the kernel command line
// says and powers off. It only returns if powering off failed.
func Main() int {
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "tvix-init: must run as PID 1 (the init of a tvix boot initramfs)")
		return 1
	}
	code, err := run()
	if err != nil {
		fmt.Fprintf(os.Stderr, "tvix-init: %v\n", err)
		marker(FailMarker(err.Error()))
	} else if code >= 0 {
		marker(ExitMarker(code))
	}
	powerOff()
	return 1
}

// marker prints a status marker. The host finds markers anywhere in the
// output and removes them with the newline that follows, so the guest's
// own output passes unchanged.
func marker(m string) { os.Stdout.WriteString(m + "\n") }

// uptime is CLOCK_BOOTTIME: the time since the kernel started.
func uptime() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// run returns the exit code to report, or -1 if none is to be reported.
func run() (int, error) {
	stages := []Stage{{"init", uptime()}}
	if err := mountBase(); err != nil {
		return 0, err
	}
	raw, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return 0, fmt.Errorf("read kernel command line: %w", err)
	}
	mode, err := ParseCmdline(string(raw))
	if err != nil {
		return 0, fmt.Errorf("kernel command line: %w", err)
	}
	if err := loadModules(); err != nil {
		return 0, err
	}
	stages = append(stages, Stage{"modules", uptime()})
	if err := waitDisks(mode.Disks, 10*time.Second); err != nil {
		return 0, err
	}
	if mode.Disks > 0 {
		stages = append(stages, Stage{"disks", uptime()})
	}
	os.Setenv("PATH", "/bin")
	os.Setenv("HOME", "/")
	os.Setenv("TERM", "linux")

	if mode.System != "" && len(mode.Run) == 0 && !mode.Shell && !mode.Find {
		return -1, switchRoot(mode)
	}
	if mode.Build {
		return runBuild(mode)
	}
	if err := mountStore(mode.Tag, StoreDir); err != nil {
		return 0, err
	}
	var script *os.File
	if mode.ShellScript {
		// Quiet before the host is told to send: the console would
		// echo the script, and an interactive shell's line editing eats
		// what arrives while it probes the terminal.
		if script, err = rawConsole(); err != nil {
			return 0, err
		}
		defer script.Close()
	}
	marker(ReadyMarkerWith(append(stages, Stage{"store", uptime()})))
	switch {
	case len(mode.Run) > 0:
		return runCommand(mode.Run), nil
	case script != nil:
		return scriptShell(script)
	case mode.Shell:
		return shell()
	case mode.Find:
		return 0, find(StoreDir)
	}
	return 0, errors.New("nothing to do: the kernel command line has none of tvix.run=, tvix.shell, tvix.find, init=")
}

func mountBase() error {
	for _, m := range []struct{ src, dst, fstype string }{
		{"proc", "/proc", "proc"},
		{"sysfs", "/sys", "sysfs"},
		{"devtmpfs", "/dev", "devtmpfs"},
		{"tmpfs", "/tmp", "tmpfs"},
	} {
		if err := os.MkdirAll(m.dst, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", m.dst, err)
		}
		if err := unix.Mount(m.src, m.dst, m.fstype, unix.MS_NOSUID, ""); err != nil && err != unix.EBUSY {
			return fmt.Errorf("mount %s on %s: %w", m.fstype, m.dst, err)
		}
	}
	return nil
}

// loadModules loads the modules the host put into the initramfs, in the
// order it computed from modules.dep.
func loadModules() error {
	f, err := os.Open(ModuleOrder)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // everything needed is built into the kernel
	}
	if err != nil {
		return fmt.Errorf("open module list: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name := strings.TrimSpace(sc.Text())
		if name == "" {
			continue
		}
		if err := loadModule(filepath.Join(ModuleDir, name)); err != nil {
			return err
		}
	}
	return sc.Err()
}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("load module: %w", err)
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && err != unix.EEXIST {
		return fmt.Errorf("load module %s: %w", filepath.Base(path), err)
	}
	return nil
}

// DiskLink is the name the init gives the host's disk i (in --disk order).
func DiskLink(i int) string { return fmt.Sprintf("/dev/tvix-disk%d", i) }

// waitDisks waits until the host's n disks are there and links each,
// found by the serial the host gave it (disk0, ...), as DiskLink(i):
// probe order need not be the host's order.
func waitDisks(n int, timeout time.Duration) error {
	if n == 0 {
		return nil
	}
	deadline := time.Now().Add(timeout)
	for {
		found := map[string]string{}
		ents, _ := os.ReadDir("/sys/block")
		for _, e := range ents {
			serial, err := os.ReadFile(filepath.Join("/sys/block", e.Name(), "serial"))
			if err == nil {
				found[strings.TrimSpace(string(serial))] = e.Name()
			}
		}
		missing := ""
		for i := 0; i < n; i++ {
			if _, ok := found[fmt.Sprintf("disk%d", i)]; !ok {
				missing = fmt.Sprintf("disk%d", i)
				break
			}
		}
		if missing == "" {
			for i := 0; i < n; i++ {
				dev := found[fmt.Sprintf("disk%d", i)]
				if err := os.Symlink(dev, DiskLink(i)); err != nil && !errors.Is(err, fs.ErrExist) {
					return fmt.Errorf("link disk %d: %w", i, err)
				}
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("disk %s (of %d) did not appear within %v (virtio_blk missing from the kernel?)", missing, n, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mountStore mounts the virtio-fs tag read-only. The device may still be
// probing right after its driver loaded, so a missing tag is retried.
func mountStore(tag, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dst, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := unix.Mount(tag, dst, "virtiofs", unix.MS_RDONLY|unix.MS_NODEV|unix.MS_NOSUID, "")
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || (err != unix.ENOENT && err != unix.ENODEV && err != unix.EINVAL) {
			return fmt.Errorf("mount virtio-fs tag %q on %s: %w", tag, dst, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runCommand runs argv on the console and returns its exit status
// (128+signal when killed, 127 when it could not be started).
func runCommand(argv []string) int {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Dir = "/"
	return exitStatus(cmd.Run(), argv[0])
}

// exitStatus turns what running program returned into an exit status as
// a shell reports it: 128+signal when killed, 127 when it could not be
// started (said on the console).
func exitStatus(err error, program string) int {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	default:
		fmt.Fprintf(os.Stderr, "tvix-init: run %s: %v\n", program, err)
		return 127
	}
}

// shell runs the initramfs' static shell with the serial console as its
// controlling terminal, so job control and ^C work.
func shell() (int, error) {
	tty, err := os.OpenFile("/dev/ttyS0", os.O_RDWR, 0)
	if err != nil {
		tty, err = os.OpenFile("/dev/console", os.O_RDWR, 0)
		if err != nil {
			return 0, fmt.Errorf("open console for the shell: %w", err)
		}
	}
	defer tty.Close()
	cmd := exec.Command(ShellPath, "-l")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.Dir = "/"
	cmd.Env = append(os.Environ(), "PS1=tvix:\\w# ")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return 0, fmt.Errorf("run %s: %w", ShellPath, err)
		}
		return ee.ExitCode(), nil
	}
	return 0, nil
}

// rawConsole opens the serial console with echo, line editing and
// output processing off, so bytes pass as the host sent them.
func rawConsole() (*os.File, error) {
	tty, err := os.OpenFile("/dev/ttyS0", os.O_RDWR, 0)
	if err != nil {
		if tty, err = os.OpenFile("/dev/console", os.O_RDWR, 0); err != nil {
			return nil, fmt.Errorf("open console for the shell: %w", err)
		}
	}
	t, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	if err != nil {
		tty.Close()
		return nil, fmt.Errorf("console termios: %w", err)
	}
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Iflag &^= unix.ICRNL | unix.INLCR | unix.IGNCR | unix.IXON
	// The host's stdout is not a terminal either: "\n" stays "\n".
	t.Oflag &^= unix.OPOST
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(int(tty.Fd()), unix.TCSETS, t); err != nil {
		tty.Close()
		return nil, fmt.Errorf("console termios: %w", err)
	}
	return tty, nil
}

// scriptShell runs the shell on the script the host sends over the
// console, up to EOT: what `cmds | tvix boot --shell` pipes in runs
// whole and the VM powers off when it ends.
func scriptShell(tty *os.File) (int, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	go func() {
		defer pw.Close()
		buf := make([]byte, 4096)
		for {
			n, err := tty.Read(buf)
			if i := bytes.IndexByte(buf[:n], 0x04); i >= 0 {
				pw.Write(buf[:i])
				return
			}
			if _, werr := pw.Write(buf[:n]); werr != nil || err != nil {
				return
			}
		}
	}()
	cmd := exec.Command(ShellPath, "-s")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pr, tty, tty
	cmd.Dir = "/"
	err = cmd.Run()
	pr.Close()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), nil
	case err != nil:
		return 0, fmt.Errorf("run %s: %w", ShellPath, err)
	}
	return 0, nil
}

// find prints every path under root, like find(1), without following
// symlinks.
func find(root string) error {
	w := bufio.NewWriter(os.Stdout)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		_, werr := w.WriteString(p + "\n")
		return werr
	})
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return fmt.Errorf("list %s: %w", root, err)
	}
	return nil
}

// switchRoot makes a tmpfs with the store mounted at /nix/store the new
// root and execs the system's init there, like switch_root(8).
func switchRoot(mode Mode) error {
	if err := os.MkdirAll(sysroot, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", sysroot, "tmpfs", 0, "mode=0755"); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", sysroot, err)
	}
	for _, d := range []string{"proc", "sys", "dev", "tmp", "run", "etc", "nix/store"} {
		if err := os.MkdirAll(filepath.Join(sysroot, d), 0o755); err != nil {
			return err
		}
	}
	if err := mountStore(mode.Tag, filepath.Join(sysroot, StoreDir)); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(sysroot, mode.System)); err != nil {
		return fmt.Errorf("init=%s: %w", mode.System, err)
	}
	for _, d := range []string{"/proc", "/sys", "/dev", "/tmp"} {
		if err := unix.Mount(d, filepath.Join(sysroot, d), "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("move %s into the new root: %w", d, err)
		}
	}
	if err := os.Chdir(sysroot); err != nil {
		return err
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move %s to /: %w", sysroot, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot: %w", err)
	}
	if err := os.Chdir("/"); err != nil {
		return err
	}
	argv := []string{mode.System}
	if err := unix.Exec(mode.System, argv, os.Environ()); err != nil {
		return fmt.Errorf("exec init=%s: %w", mode.System, err)
	}
	return nil
}

func powerOff() {
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		fmt.Fprintf(os.Stderr, "tvix-init: power off: %v\n", err)
	}
	// PID 1 must not exit (the kernel would panic); wait for the end.
	for {
		time.Sleep(time.Hour)
	}
}
