// Package boot starts a QEMU virtual machine whose /nix/store is a
// virtio-fs share: it builds an initramfs (tvix-init, the kernel modules
// virtio-fs needs, optionally busybox) and runs QEMU with the
// vhost-user-fs device on a virtiofs socket, either an existing one (a
// running daemon) or one served in-process from a fuse.RawFileSystem.
package boot

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/tvix-go/tvix/boot/guest"
	"github.com/tvix-go/tvix/internal/netlisten"
	"github.com/tvix-go/tvix/nbd"
	"github.com/tvix-go/tvix/virtiofs"
)

// Config describes one boot. Exactly one of Run, Shell, Find, System
// selects what the guest does; exactly one of Socket and FS provides the
// store.
type Config struct {
	Run    []string // tvix.run: run this, report its exit status
	Shell  bool     // tvix.shell: interactive shell on the console
	Find   bool     // tvix.find: list /nix/store
	System string   // init=: switch_root into this system's init
	// Build runs the BuildRequest in Files[guest.BuildRequestFile] in the
	// guest (tvix.build) and streams the result to the Ports entry named
	// guest.BuildPort.
	Build bool
	// Files are added to the initramfs (path without leading slash).
	Files map[string][]byte
	// Ports are virtio-serial ports the guest sees by name; QEMU connects
	// to each Socket (the caller listens there before Run).
	Ports []Port

	Socket string             // vhost-user socket of a running virtiofs server
	FS     fuse.RawFileSystem // or: serve this tree in-process
	// VirtiofsOptions tune the in-process server.
	VirtiofsOptions virtiofs.Options

	// Disks are given to the guest read-only as virtio-blk devices
	// (/dev/vda, /dev/vdb, ... in this order; also /dev/tvix-disk0, ...),
	// served over NBD on a unix socket to QEMU's NBD client, so only the
	// blocks the guest reads are read from Data.
	Disks []nbd.Export

	Kernel     string // default: newest /boot/vmlinuz-*
	ModulesDir string // default: /lib/modules/<release of Kernel>
	Init       string // tvix-init binary; see findInit
	// SelfCanBeInit says the running binary, when it is a static tvix,
	// acts as the guest's /init (it has the "init" personality).
	SelfCanBeInit bool
	QEMU          string // default: qemu-system-x86_64 from PATH
	Busybox       string // static busybox for Shell and Tools; default /bin/busybox
	// Tools puts the static busybox and its applets into the initramfs'
	// /bin (as Shell does) for Run commands, e.g. to read a disk.
	Tools    bool
	Machine  string // MachineMicroVM (default) or MachineQ35
	Accel    string // "auto" (default: KVM if usable), "kvm" or "tcg"
	CPUs     int    // default 1
	MemoryMB int    // default 512
	Tag      string // virtio-fs tag, default "tvix"
	Append   []string
	// NoDirectBoot boots the compressed kernel as is instead of the
	// vmlinux extracted from it (cached in CacheDir) via PVH.
	NoDirectBoot bool
	CacheDir     string

	// BootTimeout bounds the time until the guest has mounted the store
	// (default 60s); Timeout bounds the whole run (default: none).
	BootTimeout, Timeout time.Duration

	// AllowReboot lets a guest reboot restart it in the same QEMU (and
	// virtio-fs connection) instead of ending the run.
	AllowReboot bool

	Stdin          io.Reader // only used with Shell
	stdinTTY       bool      // Stdin is a terminal (set by Run)
	Stdout, Stderr io.Writer // default os.Stdout, os.Stderr
	Logger         *slog.Logger
}

// Port is a virtio-serial port.
type Port struct {
	Name, Socket string
}

// Result is what a boot ended with.
type Result struct {
	// ExitCode is the guest command's status (Run), 0 otherwise.
	ExitCode int
	// Accel is the accelerator used ("kvm" or "tcg").
	Accel string
	// Ready is the time from QEMU start until the store was mounted;
	// Total until QEMU exited.
	Ready, Total time.Duration
	// Prepare is the time before QEMU started (finding the kernel,
	// building the initramfs, starting servers); Poweroff from the
	// guest's final status line to QEMU's exit.
	Prepare, Poweroff time.Duration
	// Guest are the init's stages in guest uptime (kernel start = 0).
	Guest []guest.Stage
	// InitramfsBytes is the size of the initramfs.
	InitramfsBytes int64
	// QEMUCPU is the CPU time QEMU used (user+system): under TCG it
	// hardly depends on how busy the host is, unlike the wall times.
	QEMUCPU time.Duration
}

// Run boots the VM and waits for it to finish.
func Run(ctx context.Context, cfg Config) (Result, error) {
	res := Result{}
	begin := time.Now()
	c, err := cfg.withDefaults()
	if err != nil {
		return res, err
	}
	qemu, err := findQEMU(c.QEMU)
	if err != nil {
		return res, err
	}
	kernel, release, err := findKernel(c.Kernel)
	if err != nil {
		return res, err
	}
	initBin, err := findInit(c.Init, c.SelfCanBeInit)
	if err != nil {
		return res, err
	}
	spec := InitramfsSpec{Init: initBin, Files: c.Files}
	if c.Shell || c.Tools {
		if spec.Shell, err = findShell(c.Busybox); err != nil {
			return res, err
		}
	}
	modDir := c.ModulesDir
	if modDir == "" {
		modDir = filepath.Join("/lib/modules", release)
	}
	if _, err := os.Stat(filepath.Join(modDir, "modules.dep")); err == nil {
		spec.ModulesDir, spec.Modules = modDir, modulesFor(c.Machine, len(c.Disks) > 0)
		if len(c.Ports) > 0 {
			spec.Modules = append(spec.Modules, "virtio_console")
		}
	} else if c.ModulesDir != "" {
		return res, fmt.Errorf("modules directory %s: %w", c.ModulesDir, err)
	} else {
		c.Logger.Warn("no modules for the kernel; assuming virtio-fs is built in", "kernel", kernel, "looked-in", modDir)
	}
	bootKernel := kernel
	if !c.NoDirectBoot {
		if k, err := directBootKernel(kernel, c.CacheDir); err != nil {
			c.Logger.Debug("booting the compressed kernel", "kernel", kernel, "reason", err)
		} else {
			bootKernel = k
		}
	}
	res.Accel = c.Accel
	if c.Accel == "auto" {
		res.Accel = "tcg"
		if kvmUsable() {
			res.Accel = "kvm"
		}
	} else if c.Accel == "kvm" && !kvmUsable() {
		return res, errors.New("accel kvm: /dev/kvm is missing or not accessible, or the CPU has no vmx/svm (load kvm_intel/kvm_amd, join group kvm)")
	}

	tmp, err := os.MkdirTemp("", "tvix-boot-")
	if err != nil {
		return res, fmt.Errorf("create work directory: %w", err)
	}
	defer os.RemoveAll(tmp)

	initrd := filepath.Join(tmp, "initramfs.cpio")
	if err := writeInitramfsFile(initrd, spec); err != nil {
		return res, fmt.Errorf("build initramfs: %w", err)
	}
	if fi, err := os.Stat(initrd); err == nil {
		res.InitramfsBytes = fi.Size()
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	sock := c.Socket
	if c.FS != nil {
		sock = filepath.Join(tmp, "virtiofs.sock")
		l, err := virtiofs.Listen(sock)
		if err != nil {
			return res, err
		}
		srvCtx, stopSrv := context.WithCancel(context.Background())
		srvDone := make(chan struct{})
		go func() {
			defer close(srvDone)
			if err := virtiofs.ServeListener(srvCtx, l, c.FS, c.VirtiofsOptions); err != nil {
				cancel(fmt.Errorf("in-process virtiofs server failed: %w", err))
			}
		}()
		defer func() { stopSrv(); <-srvDone }()
	}
	if err := waitSocket(ctx, sock, 10*time.Second); err != nil {
		return res, err
	}
	var nbdSock string
	if len(c.Disks) > 0 {
		// QEMU connects to the NBD server at start and gives up at once
		// if it cannot, so it listens before QEMU starts.
		nbdSock = filepath.Join(tmp, "nbd.sock")
		ul, err := netlisten.Unix(ctx, nbdSock)
		if err != nil {
			return res, fmt.Errorf("listen for the disks' NBD clients: %w", err)
		}
		l := netlisten.Retry(ul, netlisten.Logger(c.Logger))
		srvCtx, stopSrv := context.WithCancel(context.Background())
		srvDone := make(chan struct{})
		go func() {
			defer close(srvDone)
			if err := nbd.NewServer(c.Logger, c.Disks...).Serve(srvCtx, l); err != nil {
				cancel(fmt.Errorf("disk NBD server failed: %w", err))
			}
		}()
		defer func() { stopSrv(); <-srvDone }()
	}

	cmdline := kernelCmdline(c.Machine)
	if res.Accel == "tcg" {
		if khz := hostTSCkHz(); khz > 0 {
			// Under a busy TCG the guest's PIT calibration of the TSC can
			// fail, and a microvm (no HPET, no PM timer) then hangs.
			cmdline = append(cmdline, fmt.Sprintf("tsc_early_khz=%d", khz))
		}
		// TCG's TSC is the host's, so it is reliable; but the watchdog
		// compares it with jiffies, which lose ticks whenever QEMU is
		// descheduled, declares it unstable and switches the guest to
		// the coarse jiffies clock (seen on a loaded host), which also
		// makes the guest's boot timestamps wrong.
		cmdline = append(cmdline, "tsc=reliable")
	}
	if f, ok := c.Stdin.(*os.File); ok && c.Shell {
		if _, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err == nil {
			c.stdinTTY = true
		}
	}
	cmdline = append(cmdline, c.modeParams()...)
	cmdline = append(cmdline, c.Append...)
	// x86 COMMAND_LINE_SIZE; the kernel would silently cut the rest.
	if n := len(strings.Join(cmdline, " ")); n > 2047 {
		return res, fmt.Errorf("kernel command line is %d bytes, the limit is 2047: shorten the command's arguments or --append", n)
	}
	stdinTTY := c.stdinTTY
	args := qemuArgs(qemuSpec{
		machine: c.Machine, accel: res.Accel, cpus: c.CPUs, memoryMB: c.MemoryMB,
		kernel: bootKernel, initrd: initrd, sock: sock, tag: c.Tag,
		cmdline: strings.Join(cmdline, " "), stdinIsTerminal: stdinTTY, allowReboot: c.AllowReboot,
		nbdSock: nbdSock, disks: diskNames(c.Disks), ports: c.Ports,
	})
	c.Logger.Debug("starting QEMU", "qemu", qemu, "args", args)
	res.Prepare = time.Since(begin)
	return c.runQEMU(ctx, cancel, qemu, args, sock, res)
}

func (c *Config) withDefaults() (Config, error) {
	r := *c
	modes := 0
	for _, on := range []bool{len(r.Run) > 0, r.Shell, r.Find, r.System != "", r.Build} {
		if on {
			modes++
		}
	}
	if modes != 1 {
		return r, errors.New("choose exactly one of: run a command, shell, find, system (init=), build")
	}
	if r.System != "" && !strings.HasPrefix(r.System, "/") {
		return r, fmt.Errorf("system init %q: want an absolute path", r.System)
	}
	if (r.Socket == "") == (r.FS == nil) {
		return r, errors.New("give either a virtiofs socket or a file system to serve")
	}
	if r.Machine == "" {
		r.Machine = MachineMicroVM
	}
	if len(r.Disks) > maxDisks {
		return r, fmt.Errorf("%d disks: at most %d", len(r.Disks), maxDisks)
	}
	r.Disks = append([]nbd.Export(nil), r.Disks...)
	for i := range r.Disks {
		// The export name is only QEMU's handle; the guest sees the order.
		r.Disks[i].Name = fmt.Sprintf("disk%d", i)
		if r.Disks[i].Data == nil || r.Disks[i].Size <= 0 {
			return r, fmt.Errorf("disk %d: no data or empty", i)
		}
	}
	if r.Machine != MachineMicroVM && r.Machine != MachineQ35 {
		return r, fmt.Errorf("machine %q: want %s or %s", r.Machine, MachineMicroVM, MachineQ35)
	}
	if r.Accel == "" {
		r.Accel = "auto"
	}
	if r.Accel != "auto" && r.Accel != "kvm" && r.Accel != "tcg" {
		return r, fmt.Errorf("accel %q: want auto, kvm or tcg", r.Accel)
	}
	if r.CPUs <= 0 {
		r.CPUs = 1
	}
	if r.MemoryMB <= 0 {
		r.MemoryMB = 512
	}
	if r.MemoryMB < 64 {
		return r, fmt.Errorf("memory %dM: want at least 64M", r.MemoryMB)
	}
	if r.Tag == "" {
		r.Tag = guest.DefaultTag
	}
	if r.BootTimeout <= 0 {
		r.BootTimeout = 60 * time.Second
	}
	if r.Stdout == nil {
		r.Stdout = os.Stdout
	}
	if r.Stderr == nil {
		r.Stderr = os.Stderr
	}
	if r.Logger == nil {
		r.Logger = slog.Default()
	}
	if r.CacheDir == "" {
		r.CacheDir = cacheDir()
	}
	return r, nil
}

// maxDisks is what microvm's 8 virtio-mmio transports leave besides
// virtio-fs.
const maxDisks = 7

func diskNames(disks []nbd.Export) []string {
	var n []string
	for _, d := range disks {
		n = append(n, d.Name)
	}
	return n
}

func (c *Config) modeParams() []string {
	var p []string
	if c.Tag != guest.DefaultTag {
		p = append(p, guest.KeyTag+"="+c.Tag)
	}
	if len(c.Disks) > 0 {
		p = append(p, fmt.Sprintf("%s=%d", guest.KeyDisks, len(c.Disks)))
	}
	switch {
	case len(c.Run) > 0:
		p = append(p, guest.EncodeRun(c.Run))
	case c.Shell && c.Stdin != nil && !c.stdinTTY:
		p = append(p, guest.KeyShell+"="+guest.ShellScript)
	case c.Shell:
		p = append(p, guest.KeyShell)
	case c.Find:
		p = append(p, guest.KeyFind)
	case c.System != "":
		p = append(p, guest.KeyInit+"="+c.System)
	case c.Build:
		p = append(p, guest.KeyBuild)
	}
	return p
}

func writeInitramfsFile(path string, spec InitramfsSpec) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := WriteInitramfs(f, spec); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// waitSocket returns once the vhost-user socket accepts a connection:
// QEMU gives up at once if it cannot connect.
func waitSocket(ctx context.Context, path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		last = err
		if time.Now().After(deadline) {
			return fmt.Errorf("virtiofs socket %s does not accept connections after %v (is `tvix virtiofs` or the daemon running?): %w", path, timeout, last)
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// watchSocket cancels the boot when the virtiofs server stops accepting
// connections (twice in a row, half a second apart).
func watchSocket(path string, done <-chan struct{}, cancel context.CancelCauseFunc) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	fails := 0
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			fails = 0
			continue
		}
		if fails++; fails >= 2 {
			cancel(fmt.Errorf("virtio-fs server on %s went away: %w", path, err))
			return
		}
	}
}

// vhostFailures are QEMU messages meaning the virtiofs server went away.
var vhostFailures = []string{
	"vhost_user", "vhost-user", "vhost_set_", "vhost_get_", "Failed to read msg header",
	"Failed to set msg fds", "vhost lacks feature", "Disconnected", "Connection reset",
}

func (c *Config) runQEMU(ctx context.Context, cancel context.CancelCauseFunc, qemu string, args []string, sock string, res Result) (Result, error) {
	cmd := exec.Command(qemu, args...)
	// If tvix dies, QEMU must not live on.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: !c.Shell}
	var script io.WriteCloser
	if c.Shell && c.Stdin != nil && c.stdinTTY {
		cmd.Stdin = c.Stdin
	} else if c.Shell && c.Stdin != nil {
		// A script is sent once the guest's console is quiet (the ready
		// marker); QEMU would otherwise push its first bytes into the
		// UART while the kernel still echoes and the shell is not there.
		var err error
		if script, err = cmd.StdinPipe(); err != nil {
			return res, err
		}
	}
	var (
		mu      sync.Mutex
		ready   bool
		final   *guest.Marker
		stages  []guest.Stage
		tail    []string
		readyCh = make(chan struct{})
		finalCh = make(chan struct{})
	)
	filter := newConsoleFilter(c.Stdout, !c.Shell, func(m guest.Marker, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			c.Logger.Warn("unreadable marker from the guest", "err", err)
			return
		}
		switch {
		case m.Ready && !ready:
			ready = true
			stages = m.Stages
			close(readyCh)
			if script != nil {
				go func() {
					io.Copy(script, c.Stdin)
					script.Write([]byte{0x04}) // the guest's end of the script
				}()
			}
		case (m.Exit || m.Fail != "") && final == nil:
			final = &m
			close(finalCh)
		}
	})
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return res, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return res, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return res, fmt.Errorf("start %s: %w", qemu, err)
	}
	var readers sync.WaitGroup
	readers.Add(2)
	go func() {
		defer readers.Done()
		io.Copy(filter, stdout)
		filter.Flush()
	}()
	go func() {
		defer readers.Done()
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			tail = append(tail, line)
			if len(tail) > 20 {
				tail = tail[1:]
			}
			mu.Unlock()
			c.Logger.Debug("qemu", "stderr", line)
			for _, pat := range vhostFailures {
				if strings.Contains(line, pat) {
					cancel(fmt.Errorf("virtio-fs server on %s went away or failed (QEMU: %s)", sock, line))
					break
				}
			}
		}
	}()
	exited := make(chan error, 1)
	qemuDone := make(chan struct{})
	go func() {
		readers.Wait() // Wait closes the pipes: drain them first
		err := cmd.Wait()
		close(qemuDone)
		exited <- err
	}()
	if c.Socket != "" {
		// QEMU 7.2 notices a dead vhost-user server only at its next
		// message (often at poweroff), and the guest's FUSE requests hang
		// meanwhile; so watch the server ourselves.
		go watchSocket(c.Socket, qemuDone, cancel)
	}
	kill := func() {
		cmd.Process.Kill()
	}
	qemuTail := func() string {
		mu.Lock()
		defer mu.Unlock()
		if len(tail) == 0 {
			return ""
		}
		return "; QEMU said:\n  " + strings.Join(tail, "\n  ")
	}

	bootTimer := time.NewTimer(c.BootTimeout)
	defer bootTimer.Stop()
	var total <-chan time.Time
	if c.Timeout > 0 {
		t := time.NewTimer(c.Timeout)
		defer t.Stop()
		total = t.C
	}
	var waitErr error
	var failure error
	finalSeen := false
	var finalAt time.Time
loop:
	for {
		select {
		case waitErr = <-exited:
			break loop
		case <-readyCh:
			res.Ready = time.Since(start)
			bootTimer.Stop()
			readyCh = nil
		case <-finalCh:
			finalCh = nil
			finalSeen = true
			finalAt = time.Now()
			// The guest powers off next; don't wait on a hung QEMU.
			bootTimer.Reset(15 * time.Second)
		case <-bootTimer.C:
			if finalSeen {
				failure = errors.New("QEMU did not exit within 15s of the guest powering off")
			} else {
				hint := ""
				if res.Accel == "kvm" {
					hint = "; if KVM is nested or emulated here, try --accel tcg"
				}
				failure = fmt.Errorf("the guest did not mount the store within %v (kernel or init stuck? output above%s)%s", c.BootTimeout, hint, qemuTail())
			}
			kill()
			waitErr = <-exited
			break loop
		case <-total:
			failure = fmt.Errorf("the VM ran longer than %v", c.Timeout)
			kill()
			waitErr = <-exited
			break loop
		case <-ctx.Done():
			failure = context.Cause(ctx)
			kill()
			waitErr = <-exited
			break loop
		}
	}
	res.Total = time.Since(start)
	if ps := cmd.ProcessState; ps != nil {
		res.QEMUCPU = ps.UserTime() + ps.SystemTime()
	}
	if finalSeen {
		res.Poweroff = time.Since(finalAt)
	}
	mu.Lock()
	fin := final
	res.Guest = stages
	mu.Unlock()
	switch {
	case fin != nil && fin.Fail != "":
		return res, fmt.Errorf("guest init failed: %s", fin.Fail)
	case fin != nil && fin.Exit:
		res.ExitCode = fin.ExitCode
		if failure != nil {
			c.Logger.Warn("VM shutdown", "err", failure)
		}
		return res, nil
	case failure != nil:
		return res, failure
	case waitErr != nil:
		return res, fmt.Errorf("QEMU failed: %v%s", waitErr, qemuTail())
	case len(c.Run) > 0 || c.Find:
		return res, fmt.Errorf("the guest powered off without reporting a result (kernel panic? output above)%s", qemuTail())
	}
	return res, nil
}
