package fs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/tvix-go/tvix/internal/fuselog"
)

// Mount methods, as reported by Mounted.Method.
const (
	MethodDirect     = "direct"     // mount(2) on /dev/fuse, needs CAP_SYS_ADMIN
	MethodFusermount = "fusermount" // the setuid fusermount3/fusermount helper
)

// Mounted is a live kernel mount of a tree.
type Mounted struct {
	srv        *fuse.Server
	mountpoint string
	method     string
	log        *slog.Logger
	done       chan struct{}
	doneOnce   sync.Once

	once sync.Once
	err  error
}

// stopped marks the filesystem as no longer served.
func (m *Mounted) stopped() { m.doneOnce.Do(func() { close(m.done) }) }

// Mount mounts the tree at mountpoint and serves it until Unmount,
// an external unmount, or ctx being cancelled (which unmounts). It tries
// mount(2) first and falls back to the fusermount helper; if both fail the
// error names both failures. The mountpoint must be an empty directory
// that is not a mount point already (see Options.AllowNonEmpty).
func Mount(ctx context.Context, mountpoint string, svc Services, opts Options) (*Mounted, error) {
	mp, err := filepath.Abs(mountpoint)
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	if err := CheckMountpoint(mp, opts.AllowNonEmpty); err != nil {
		return nil, err
	}
	lg := opts.Logger
	if lg == nil {
		lg = slog.Default()
	}
	treeCtx, cancel := context.WithCancel(context.Background())
	raw := NewRawFileSystem(treeCtx, svc, opts)

	mo := fuse.MountOptions{
		AllowOther: opts.AllowOther,
		FsName:     "tvix-store",
		Name:       "tvix",
		// Bigger requests mean fewer round trips for sequential reads.
		MaxWrite:     1 << 20,
		MaxReadAhead: 1 << 20,
		// Blob bytes in local pack files are spliced from the page cache
		// to the FUSE device (no copy through this process), if a pipe can
		// hold a whole 1 MiB reply; otherwise go-fuse would log every read.
		DisableSplice: !pipesHoldReplies(1<<20 + 2*os.Getpagesize()),
		// security.capability is asked for on every exec; the store has
		// no such labels, so answer without a round trip to the tree.
		IgnoreSecurityLabels: true,
		Debug:                opts.Debug,
		// go-fuse reports connection trouble here, and with Debug every
		// request, which should show without lowering the log level.
		Logger: fuselog.New(lg, slog.LevelWarn),
	}
	if opts.Debug {
		mo.Logger = fuselog.New(lg, slog.LevelInfo)
	}

	direct := mo
	direct.DirectMountStrict = true
	direct.DirectMountFlags = syscall.MS_RDONLY | syscall.MS_NOSUID | syscall.MS_NODEV
	var srv *fuse.Server
	errDirect := errors.New("skipped")
	if !opts.skipDirectMount {
		srv, errDirect = fuse.NewServer(raw, mp, &direct)
	}
	method := MethodDirect
	if errDirect != nil {
		fm := mo
		fm.Options = []string{"ro", "nosuid", "nodev"}
		var errFM error
		srv, errFM = fuse.NewServer(raw, mp, &fm)
		if errFM != nil {
			cancel()
			return nil, fmt.Errorf("mount %s: direct mount(2) failed: %v; fusermount failed: %v", mp, errDirect, strings.TrimSpace(errFM.Error()))
		}
		method = MethodFusermount
		lg.Debug("direct mount failed, mounted with fusermount", "mountpoint", mp, "direct_err", errDirect)
	}

	m := &Mounted{srv: srv, mountpoint: mp, method: method, log: lg, done: make(chan struct{})}
	go func() {
		srv.Serve()
		cancel()
		m.stopped()
	}()
	if err := srv.WaitMount(); err != nil {
		_ = m.Unmount()
		return nil, fmt.Errorf("mount %s: %w", mp, err)
	}
	if err := setReadAhead(mp, opts.ReadAheadKiB); err != nil {
		lg.Debug("cannot set readahead", "mountpoint", mp, "err", err)
	}
	go func() {
		select {
		case <-ctx.Done():
			if err := m.Unmount(); err != nil {
				lg.Error("unmount after cancel", "mountpoint", mp, "err", err)
			}
		case <-m.done:
		}
	}()
	lg.Info("mounted store", "mountpoint", mp, "method", method, "list_root", opts.ListRoot)
	return m, nil
}

// pipesHoldReplies reports whether a pipe can be grown to n bytes: beyond
// /proc/sys/fs/pipe-max-size (1 MiB by default) only with CAP_SYS_RESOURCE.
func pipesHoldReplies(n int) bool {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return false
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	got, err := unix.FcntlInt(uintptr(p[0]), unix.F_SETPIPE_SZ, n)
	return err == nil && got >= n
}

// setReadAhead sets the readahead of the mount's backing device info.
func setReadAhead(mp string, kib int) error {
	if kib < 0 {
		return nil
	}
	if kib == 0 {
		kib = DefaultReadAheadKiB
	}
	var st unix.Stat_t
	if err := unix.Stat(mp, &st); err != nil {
		return err
	}
	p := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))
	return os.WriteFile(p, []byte(strconv.Itoa(kib)), 0)
}

// KernelPassthrough reports whether the kernel accepted FUSE passthrough,
// so files with a backing file are read without the mount.
func (m *Mounted) KernelPassthrough() bool {
	return m.srv.KernelSettings().Flags64()&fuse.CAP_PASSTHROUGH != 0
}

// Mountpoint is the absolute path mounted on.
func (m *Mounted) Mountpoint() string { return m.mountpoint }

// Method says how the mount was made: MethodDirect or MethodFusermount.
func (m *Mounted) Method() string { return m.method }

// Done is closed when the filesystem stopped being served.
func (m *Mounted) Done() <-chan struct{} { return m.done }

// Wait blocks until the filesystem stopped being served.
func (m *Mounted) Wait() { <-m.done }

// Unmount unmounts and waits until serving stopped. When the mount is
// busy (a process has a file open or its cwd inside), it is detached
// lazily instead: it disappears from the namespace at once and is served
// until the last user lets go.
//
// A mount namespace created while the mount existed (a sandbox, unshare)
// holds a copy of it, which keeps the kernel's connection alive after the
// mount is gone from ours: serving would then only stop when that
// namespace ends. Unmount waits for that at most orphanWait, then returns,
// leaving the connection to end with this process.
func (m *Mounted) Unmount() error {
	m.once.Do(func() {
		unmounted := make(chan error, 1)
		go func() { unmounted <- m.srv.Unmount() }()
		var err error
		select {
		case err = <-unmounted:
		case <-time.After(orphanWait):
			if mounted(m.mountpoint) {
				err = <-unmounted
				break
			}
			m.log.Warn("unmounted, but another mount namespace still holds the mount; not waiting for it", "mountpoint", m.mountpoint)
			m.stopped()
			return
		}
		if err != nil {
			m.log.Warn("mountpoint busy, detaching lazily", "mountpoint", m.mountpoint, "err", err)
			err = m.detach()
		}
		if err != nil {
			m.err = fmt.Errorf("unmount %s: %w", m.mountpoint, err)
			return
		}
		<-m.done
	})
	return m.err
}

// Detach removes the mount from this namespace at once (lazily, so a
// busy mount goes too) and returns without waiting for serving to stop.
// It is for a mount whose own users are known to be gone, such as a
// finished build's inputs: another sandbox created meanwhile holds a copy
// of the mount until it ends, and the build's result must not wait for
// that. Serving stops, and Done is closed, when the last copy goes.
func (m *Mounted) Detach() error {
	m.once.Do(func() {
		if err := m.detach(); err != nil {
			m.err = fmt.Errorf("unmount %s: %w", m.mountpoint, err)
		}
	})
	return m.err
}

// orphanWait is how long Unmount waits for serving to stop once the
// mount is gone from this namespace.
var orphanWait = 5 * time.Second

// mounted reports whether mp is a mount point in this process's mount
// namespace.
func mounted(mp string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return true // cannot tell: keep waiting, as before
	}
	esc := strings.NewReplacer(" ", `\040`, "\t", `\011`, "\n", `\012`, `\`, `\134`).Replace(mp)
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == esc {
			return true
		}
	}
	return false
}

func (m *Mounted) detach() error {
	if m.method == MethodDirect {
		if err := syscall.Unmount(m.mountpoint, syscall.MNT_DETACH); err != nil {
			return fmt.Errorf("lazy unmount: %w", err)
		}
		return nil
	}
	bin, err := lookFusermount()
	if err != nil {
		return fmt.Errorf("lazy unmount: %w", err)
	}
	if out, err := exec.Command(bin, "-u", "-z", m.mountpoint).CombinedOutput(); err != nil {
		return fmt.Errorf("%s -u -z: %v: %s", bin, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// lookFusermount finds the helper go-fuse uses: fusermount3 (fuse3), else
// fusermount.
func lookFusermount() (string, error) {
	if p, err := exec.LookPath("fusermount3"); err == nil {
		return p, nil
	}
	return exec.LookPath("fusermount")
}

// ErrMountpoint wraps every refusal of a mountpoint.
var ErrMountpoint = errors.New("unusable mountpoint")

// CheckMountpoint refuses what a mount would hide or fail on: a path that
// is not a directory, a stale FUSE mount, an existing mount point, and,
// unless allowNonEmpty, a directory with entries.
func CheckMountpoint(mp string, allowNonEmpty bool) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w %s: %s", ErrMountpoint, mp, fmt.Sprintf(format, args...))
	}
	st, err := os.Stat(mp)
	switch {
	case errors.Is(err, syscall.ENOTCONN):
		return fail("stale FUSE mount (transport endpoint is not connected); unmount it first (fusermount3 -u %s)", mp)
	case errors.Is(err, os.ErrNotExist):
		return fail("does not exist")
	case err != nil:
		return fail("%v", err)
	case !st.IsDir():
		return fail("not a directory")
	}
	if fstype, ok, err := mountedAt(mp); err != nil {
		return fail("reading the mount table: %v", err)
	} else if ok {
		return fail("busy: already a mount point (%s); unmount it first", fstype)
	}
	if !allowNonEmpty {
		f, err := os.Open(mp)
		if err != nil {
			return fail("%v", err)
		}
		names, _ := f.Readdirnames(1)
		f.Close()
		if len(names) > 0 {
			return fail("not empty (contains %q); mounting would hide its contents", names[0])
		}
	}
	return nil
}

// mountedAt reports whether something is mounted at mp in this mount
// namespace, and its filesystem type.
func mountedAt(mp string) (fstype string, ok bool, err error) {
	real, err := filepath.EvalSymlinks(mp)
	if err != nil {
		return "", false, err
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// id parent major:minor root mountpoint opts [optional...] - fstype source superopts
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || unescapeMountinfo(fields[4]) != real {
			continue
		}
		fstype = "?"
		for i, f := range fields {
			if f == "-" && i+1 < len(fields) {
				fstype = fields[i+1]
				break
			}
		}
		return fstype, true, nil
	}
	return "", false, sc.Err()
}

// unescapeMountinfo undoes the kernel's octal escapes (\040 for space...).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
