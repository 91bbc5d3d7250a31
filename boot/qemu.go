package boot

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Machine types.
const (
	// MachineMicroVM is QEMU's microvm with ACPI and virtio-mmio: no PCI
	// bus to probe, the fastest boot.
	MachineMicroVM = "microvm"
	// MachineQ35 is a PC with virtio-pci.
	MachineQ35 = "q35"
)

// findQEMU locates qemu-system-x86_64 unless given.
func findQEMU(path string) (string, error) {
	if path != "" {
		if _, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("QEMU %s: %w", path, err)
		}
		return path, nil
	}
	p, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return "", errors.New("qemu-system-x86_64 not found in PATH: install QEMU (Debian/Ubuntu: apt-get install qemu-system-x86) or pass --qemu")
	}
	return p, nil
}

// findKernel returns the kernel to boot and its release (for the modules),
// by default the newest /boot/vmlinuz-*.
func findKernel(path string) (kernel, release string, err error) {
	if path == "" {
		cands, _ := filepath.Glob("/boot/vmlinuz-*")
		if len(cands) == 0 {
			return "", "", errors.New("no kernel found (/boot/vmlinuz-*): install one (Debian: apt-get install linux-image-amd64) or pass --kernel")
		}
		sort.Slice(cands, func(i, j int) bool { return versionLess(cands[i], cands[j]) })
		path = cands[len(cands)-1]
	}
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return "", "", fmt.Errorf("kernel %s is not readable (Debian installs kernels mode 0600): run as root, make it readable, or pass --kernel: %w", path, err)
		}
		return "", "", fmt.Errorf("kernel %s: %w (install linux-image-amd64 or pass --kernel)", path, err)
	}
	f.Close()
	return path, strings.TrimPrefix(filepath.Base(path), "vmlinuz-"), nil
}

// versionLess orders vmlinuz-6.1.0-9-amd64 before vmlinuz-6.1.0-10-amd64.
func versionLess(a, b string) bool {
	split := func(s string) []string {
		return strings.FieldsFunc(s, func(r rune) bool { return r == '.' || r == '-' })
	}
	pa, pb := split(a), split(b)
	for i := 0; i < len(pa) && i < len(pb); i++ {
		na, ea := strconv.Atoi(pa[i])
		nb, eb := strconv.Atoi(pb[i])
		if ea == nil && eb == nil {
			if na != nb {
				return na < nb
			}
			continue
		}
		if pa[i] != pb[i] {
			return pa[i] < pb[i]
		}
	}
	return len(pa) < len(pb)
}

// kvmUsable reports whether this process may create KVM VMs that run a
// stock kernel. A /dev/kvm without vmx/svm in the CPU flags is a software
// implementation (e.g. PVM inside Firecracker) that hangs unmodified
// guests, so it does not count.
func kvmUsable() bool {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return cpuHasVirt()
}

func cpuHasVirt() bool {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "flags" {
			for _, fl := range strings.Fields(v) {
				if fl == "vmx" || fl == "svm" {
					return true
				}
			}
			return false
		}
	}
	return false
}

// hostTSCkHz is the host CPU clock from /proc/cpuinfo, which TCG guests
// see as their TSC rate; 0 if unknown.
func hostTSCkHz() int {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "cpu MHz" {
			mhz, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil || mhz <= 0 {
				return 0
			}
			return int(mhz * 1000)
		}
	}
	return 0
}

// findInit locates the tvix-init binary: explicit, $TVIX_INIT, next to the
// running executable, in PATH, or the running executable itself when it
// is static (it then acts as init through its "init" personality).
func findInit(path string, selfCanBeInit bool) (string, error) {
	if path != "" {
		return checkStatic(path)
	}
	if p := os.Getenv("TVIX_INIT"); p != "" {
		return checkStatic(p)
	}
	self, selfErr := os.Executable()
	if selfErr == nil {
		p := filepath.Join(filepath.Dir(self), "tvix-init")
		if _, err := os.Stat(p); err == nil {
			return checkStatic(p)
		}
	}
	if p, err := exec.LookPath("tvix-init"); err == nil {
		return checkStatic(p)
	}
	if selfErr == nil && selfCanBeInit && filepath.Base(self) == "tvix" {
		if p, err := checkStatic(self); err == nil {
			return p, nil
		}
	}
	return "", errors.New("tvix-init not found (looked at --init, $TVIX_INIT, next to the tvix binary and in PATH): build it with `CGO_ENABLED=0 go build -ldflags='-s -w' -o \"$(dirname \"$(command -v tvix)\")/tvix-init\" ./cmd/tvix-init`")
}

// checkStatic makes sure the binary has no ELF interpreter: the initramfs
// has no dynamic loader or libc.
func checkStatic(path string) (string, error) {
	dyn, err := isDynamicELF(path)
	if err != nil {
		return "", fmt.Errorf("init binary %s: %w", path, err)
	}
	if dyn {
		return "", fmt.Errorf("init binary %s is dynamically linked; rebuild it with CGO_ENABLED=0", path)
	}
	return path, nil
}

// findShell locates a static busybox for tvix.shell.
func findShell(path string) (string, error) {
	if path == "" {
		for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
			if _, err := os.Stat(p); err == nil {
				path = p
				break
			}
		}
		if path == "" {
			return "", errors.New("no busybox found for the guest shell: install busybox-static (apt-get install busybox-static) or pass --busybox")
		}
	}
	dyn, err := isDynamicELF(path)
	if err != nil {
		return "", fmt.Errorf("shell %s: %w", path, err)
	}
	if dyn {
		return "", fmt.Errorf("shell %s is dynamically linked: install busybox-static (apt-get install busybox-static) or pass a static --busybox", path)
	}
	return path, nil
}

// qemuEscape doubles commas, QEMU's option value escape.
func qemuEscape(s string) string { return strings.ReplaceAll(s, ",", ",,") }

type qemuSpec struct {
	machine, accel       string
	cpus, memoryMB       int
	kernel, initrd, sock string
	tag, cmdline         string
	stdinIsTerminal      bool
	allowReboot          bool
	// nbdSock serves the NBD exports named in disks.
	nbdSock string
	disks   []string
	ports   []Port
}

func qemuArgs(s qemuSpec) []string {
	mem := strconv.Itoa(s.memoryMB) + "M"
	args := []string{
		"-nodefaults", "-no-user-config", "-display", "none",
		"-m", mem, "-smp", strconv.Itoa(s.cpus),
		"-object", "memory-backend-memfd,id=mem,size=" + mem + ",share=on",
		"-kernel", qemuEscape(s.kernel), "-initrd", qemuEscape(s.initrd),
		"-append", s.cmdline,
		"-chardev", "socket,id=vfs,path=" + qemuEscape(s.sock),
	}
	if !s.allowReboot {
		// A guest reboot (or kernel panic, panic=-1) ends the run.
		args = append(args, "-no-reboot")
	}
	chardev := "stdio,id=con"
	if s.stdinIsTerminal {
		// ^C goes to the guest's shell, not to QEMU.
		chardev += ",signal=off"
	}
	args = append(args, "-chardev", chardev, "-serial", "chardev:con")
	if s.accel == "kvm" {
		args = append(args, "-accel", "kvm", "-cpu", "host")
	} else {
		args = append(args, "-accel", "tcg")
	}
	fsdev := ",chardev=vfs,tag=" + qemuEscape(s.tag) + ",queue-size=1024"
	blk := "virtio-blk-device"
	switch s.machine {
	case MachineQ35:
		blk = "virtio-blk-pci"
		args = append(args, "-M", "q35,memory-backend=mem", "-device", "vhost-user-fs-pci"+fsdev)
	default:
		args = append(args, "-M", "microvm,acpi=on,memory-backend=mem", "-device", "vhost-user-fs-device"+fsdev)
	}
	if len(s.ports) > 0 {
		bus := "virtio-serial-device"
		if s.machine == MachineQ35 {
			bus = "virtio-serial-pci"
		}
		args = append(args, "-device", bus)
		for i, p := range s.ports {
			id := fmt.Sprintf("port%d", i)
			args = append(args, "-chardev", "socket,id="+id+",path="+qemuEscape(p.Socket),
				"-device", "virtserialport,chardev="+id+",name="+qemuEscape(p.Name))
		}
	}
	for _, name := range s.disks {
		// QEMU's own NBD client; read-only end to end, and the serial
		// lets the guest tell the disks apart whatever order they probe in.
		args = append(args,
			"-blockdev", "driver=nbd,node-name="+name+",server.type=unix,server.path="+qemuEscape(s.nbdSock)+",export="+name+",read-only=on",
			"-device", blk+",drive="+name+",serial="+name)
	}
	return args
}

// kernelCmdline is the fixed part of the guest command line: console on
// the serial port, silence, no probing for hardware that is not there,
// and less work a throwaway VM does not need (each step costs tens of ms
// under TCG, see docs/benchmarks-boot.md): Debian's kernel zeroes every
// page it allocates (init_on_alloc), runs the KDF self-test and sets up
// kprobe trace events at boot (together ~150 ms under TCG with
// initcall_debug), and patches in Spectre mitigations.
func kernelCmdline(machine string) []string {
	c := []string{"console=ttyS0", "quiet", "loglevel=1", "panic=-1", "rdinit=/init",
		"i8042.noaux", "i8042.nomux", "i8042.nopnp", "i8042.dumbkbd", "8250.nr_uarts=1",
		"cryptomgr.notests", "random.trust_cpu=on",
		"init_on_alloc=0", "initcall_blacklist=init_kprobe_trace,crypto_kdf108_init",
		"mitigations=off", "audit=0"}
	if machine != MachineQ35 {
		c = append(c, "pci=off")
	}
	return c
}

// modulesFor names the modules the guest needs for virtio-fs on machine,
// and for virtio-blk when it gets disks.
func modulesFor(machine string, disks bool) []string {
	m := []string{"virtio_mmio", "virtiofs"}
	if machine == MachineQ35 {
		m[0] = "virtio_pci"
	}
	if disks {
		m = append(m, "virtio_blk")
	}
	return m
}
