// Package sandbox runs a BuildRequest on this machine the way Nix 2.8's
// sandbox does: in new user, mount, pid, ipc, uts (hostname localhost)
// and, unless the request asks for the network, network namespaces, as
// uid 1000 / gid 100, with /build, /proc, a minimal /dev, /tmp and an /etc
// holding Nix's passwd, group and hosts. /nix/store holds exactly the
// request's inputs, served lazily from castore by a FUSE mount, and the
// outputs the builder writes; after the builder exits the outputs are
// ingested into castore and scanned for the request's needles.
//
// The namespaces are set up by bubblewrap (Debian's bwrap): a small,
// well-kept setuid-free tool that does exactly this set-up (the same
// calls Nix makes in C++), so tvix does not carry a re-exec helper with
// its own mount choreography; runc would need an OCI bundle per build for
// no gain here.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/tvix-go/tvix/build"
	"github.com/tvix-go/tvix/build/buildv1"
	"github.com/tvix-go/tvix/castore"
	tvixfs "github.com/tvix-go/tvix/castore/fs"
	"github.com/tvix-go/tvix/castore/fstree"
	"github.com/tvix-go/tvix/nix/refscan"
	"github.com/tvix-go/tvix/nix/storepath"
)

// Sandbox is the local build backend.
type Sandbox struct {
	// Blobs and Dirs hold the inputs and receive the outputs.
	Blobs castore.BlobService
	Dirs  castore.DirectoryService
	// ScratchDir is where builds get their directories ("" is the
	// system's temporary directory).
	ScratchDir string
	// Bwrap is bubblewrap's path ("" looks up bwrap in PATH).
	Bwrap string
	// Timeout kills a build running longer (0: no limit); MaxSilentTime
	// kills one that writes no log for that long (0: no limit).
	Timeout, MaxSilentTime time.Duration
}

var _ build.Builder = (*Sandbox)(nil)

// Build runs req. On failure nothing is kept: the scratch directory and
// mount are gone and no output reached castore durably named.
func (s *Sandbox) Build(ctx context.Context, req *buildv1.BuildRequest, log io.Writer) (*buildv1.Build, error) {
	if err := build.Validate(req); err != nil {
		return nil, err
	}
	if err := build.CheckInputs(ctx, s.Blobs, s.Dirs, req); err != nil {
		return nil, err
	}
	bwrap := s.Bwrap
	if bwrap == "" {
		p, err := exec.LookPath("bwrap")
		if err != nil {
			return nil, fmt.Errorf("build: bubblewrap not found (install Debian's bubblewrap): %w", err)
		}
		bwrap = p
	}
	top, err := os.MkdirTemp(s.ScratchDir, "tvix-build-")
	if err != nil {
		return nil, fmt.Errorf("build: scratch directory: %w", err)
	}
	defer os.RemoveAll(top)
	root := filepath.Join(top, "root")
	for _, p := range append([]string{req.GetInputsDir()}, req.GetScratchPaths()...) {
		if err := os.MkdirAll(filepath.Join(root, p), 0o755); err != nil {
			return nil, fmt.Errorf("build: scratch path %s: %w", p, err)
		}
	}
	for _, f := range req.GetAdditionalFiles() {
		p := filepath.Join(root, f.GetPath())
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, fmt.Errorf("build: additional file %s: %w", f.GetPath(), err)
		}
		if err := os.WriteFile(p, f.GetContents(), 0o644); err != nil {
			return nil, fmt.Errorf("build: additional file %s: %w", f.GetPath(), err)
		}
	}
	etc := filepath.Join(top, "etc")
	if err := writeEtc(etc, req.GetConstraints().GetNetworkAccess()); err != nil {
		return nil, err
	}

	inputs := filepath.Join(top, "inputs")
	if len(req.GetInputs()) > 0 {
		if err := os.Mkdir(inputs, 0o755); err != nil {
			return nil, fmt.Errorf("build: inputs mountpoint: %w", err)
		}
		mctx, unmount := context.WithCancel(context.WithoutCancel(ctx))
		m, err := tvixfs.Mount(mctx, inputs, tvixfs.Services{Blobs: s.Blobs, Directories: s.Dirs, Roots: build.InputRoots(req.GetInputs())},
			tvixfs.Options{AllowOther: true, Logger: slog.Default(), FixedRoots: true})
		if err != nil {
			unmount()
			return nil, fmt.Errorf("build: mount inputs: %w", err)
		}
		// Detached, not unmounted and waited for: a sandbox started
		// beside this one holds a copy of this mount until it ends, and
		// this build's result (a failure stopping the others) must not
		// wait for it.
		defer func() {
			if err := m.Detach(); err != nil {
				slog.Warn("build: unmount inputs", "err", err)
			}
			go func() { m.Wait(); unmount() }()
		}()
	}

	args := s.bwrapArgs(req, root, etc, inputs)
	if err := s.run(ctx, bwrap, args, log); err != nil {
		return nil, err
	}
	return s.collect(ctx, req, root)
}

// writeEtc writes the files Nix 2.8 puts into the sandbox's /etc. A build
// with network access (a fixed-output one) gets the host's resolver
// configuration, services and hosts instead, as Nix gives it, and a
// mount point for the host's certificates.
func writeEtc(dir string, network bool) error {
	files := build.SandboxEtc()
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("build: /etc: %w", err)
	}
	if network {
		for _, name := range []string{"resolv.conf", "services", "hosts"} {
			if b, err := os.ReadFile(filepath.Join("/etc", name)); err == nil {
				files[name] = string(b)
			}
		}
		if err := os.MkdirAll(filepath.Join(dir, "ssl"), 0o755); err != nil {
			return fmt.Errorf("build: /etc/ssl: %w", err)
		}
	}
	for name, contents := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(contents), 0o644); err != nil {
			return fmt.Errorf("build: /etc/%s: %w", name, err)
		}
	}
	return nil
}

func (s *Sandbox) bwrapArgs(req *buildv1.BuildRequest, root, etc, inputs string) []string {
	c := req.GetConstraints()
	a := []string{
		"--unshare-user", "--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try",
		"--uid", fmt.Sprint(build.SandboxUID), "--gid", fmt.Sprint(build.SandboxGID),
		"--hostname", "localhost",
		"--die-with-parent", "--new-session", "--clearenv",
	}
	if !c.GetNetworkAccess() {
		a = append(a, "--unshare-net")
	}
	for _, p := range req.GetScratchPaths() {
		a = append(a, "--bind", filepath.Join(root, p), "/"+p)
	}
	if !contains(req.GetScratchPaths(), req.GetInputsDir()) {
		a = append(a, "--bind", filepath.Join(root, req.GetInputsDir()), "/"+req.GetInputsDir())
	}
	for _, n := range req.GetInputs() {
		name := string(castore.NodeName(n))
		a = append(a, "--ro-bind", filepath.Join(inputs, name), "/"+req.GetInputsDir()+"/"+name)
	}
	a = append(a, "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--ro-bind", etc, "/etc")
	if c.GetNetworkAccess() {
		// Fixed-output builds reach the network and may need certificates.
		a = append(a, "--ro-bind-try", "/etc/ssl", "/etc/ssl")
	}
	if c.GetProvideBinSh() {
		a = append(a, "--ro-bind", "/bin/busybox", "/bin/sh")
	}
	for _, p := range c.GetAvailableRoPaths() {
		a = append(a, "--ro-bind", p, p)
	}
	for _, e := range req.GetEnvironmentVars() {
		a = append(a, "--setenv", e.GetKey(), string(e.GetValue()))
	}
	a = append(a, "--chdir", "/"+req.GetWorkingDir(), "--")
	return append(a, req.GetCommandArgs()...)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// silenceWriter records when the builder last wrote.
type silenceWriter struct {
	w    io.Writer
	last chan struct{}
}

func (sw *silenceWriter) Write(p []byte) (int, error) {
	select {
	case sw.last <- struct{}{}:
	default:
	}
	return sw.w.Write(p)
}

// run runs bwrap until the builder exits, the context ends, or a time
// limit is hit; a non-zero exit is a *build.Failure.
func (s *Sandbox) run(ctx context.Context, bwrap string, args []string, log io.Writer) error {
	if log == nil {
		log = io.Discard
	}
	sw := &silenceWriter{w: log, last: make(chan struct{}, 1)}
	cmd := exec.Command(bwrap, args...)
	cmd.Stdout, cmd.Stderr = sw, sw
	cmd.Env = []string{}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("build: start bwrap: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var timeout, silence <-chan time.Time
	if s.Timeout > 0 {
		t := time.NewTimer(s.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	var silentTimer *time.Timer
	if s.MaxSilentTime > 0 {
		silentTimer = time.NewTimer(s.MaxSilentTime)
		defer silentTimer.Stop()
		silence = silentTimer.C
	}
	kill := func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	for {
		select {
		case err := <-done:
			if err == nil {
				return nil
			}
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code := ee.ExitCode()
				if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
					return &build.Failure{Message: fmt.Sprintf("builder failed due to signal %d (%s)", ws.Signal(), ws.Signal()), ExitCode: -1}
				}
				return &build.Failure{Message: fmt.Sprintf("builder failed with exit code %d", code), ExitCode: code}
			}
			return fmt.Errorf("build: wait for bwrap: %w", err)
		case <-sw.last:
			if silentTimer != nil {
				silentTimer.Reset(s.MaxSilentTime)
			}
		case <-timeout:
			kill()
			<-done
			return &build.Failure{Message: fmt.Sprintf("builder timed out after %s", s.Timeout), ExitCode: -1, TimedOut: true}
		case <-silence:
			kill()
			<-done
			return &build.Failure{Message: fmt.Sprintf("builder produced no output for %s", s.MaxSilentTime), ExitCode: -1, TimedOut: true}
		case <-ctx.Done():
			kill()
			<-done
			return fmt.Errorf("build: %w", ctx.Err())
		}
	}
}

// collect ingests each output and scans it for the needles.
func (s *Sandbox) collect(ctx context.Context, req *buildv1.BuildRequest, root string) (*buildv1.Build, error) {
	needles, err := build.Needles(req)
	if err != nil {
		return nil, err
	}
	out := &buildv1.Build{BuildRequest: req}
	for _, o := range req.GetOutputs() {
		p := filepath.Join(root, o)
		if _, err := os.Lstat(p); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, &build.Failure{Message: fmt.Sprintf("builder failed to produce output path '/%s'", o), ExitCode: 0}
			}
			return nil, fmt.Errorf("build: output %s: %w", o, err)
		}
		node, err := fstree.Import(ctx, p, s.Blobs, s.Dirs, fstree.ImportOptions{})
		if err != nil {
			return nil, fmt.Errorf("build: ingest output %s: %w", o, err)
		}
		found, err := scan(p, needles)
		if err != nil {
			return nil, fmt.Errorf("build: scan output %s for references: %w", o, err)
		}
		out.Outputs = append(out.Outputs, node)
		out.OutputsNeedles = append(out.OutputsNeedles, &buildv1.Build_OutputNeedles{Needles: found})
	}
	return out, nil
}

// scan reports which needles occur in the tree at p (file contents and
// symlink targets), as indexes into needles.
func scan(p string, needles []storepath.StorePath) ([]uint64, error) {
	if len(needles) == 0 {
		return nil, nil
	}
	sc := refscan.New(needles)
	err := filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			t, err := os.Readlink(path)
			if err != nil {
				return err
			}
			sc.Write([]byte(t))
		case d.Type().IsRegular():
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			_, err = io.Copy(sc, f)
			f.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return build.NeedleIndexes(needles, sc.Found()), nil
}
