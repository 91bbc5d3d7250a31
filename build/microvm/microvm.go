// Package microvm runs a BuildRequest inside a QEMU MicroVM (tvix boot),
// for builds that must not share the host kernel: the guest's /nix/store
// holds exactly the request's inputs, served lazily over virtio-fs from
// castore; the guest's init runs the builder as Nix's sandbox would and
// sends each output back as a NAR over a virtio-serial port, which is
// ingested into castore and scanned for the needles. The guest has no
// network device: fixed-output builds that fetch belong to the local
// sandbox.
package microvm

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/tvix-go/tvix/boot"
	"github.com/tvix-go/tvix/boot/guest"
	"github.com/tvix-go/tvix/build"
	"github.com/tvix-go/tvix/build/buildv1"
	"github.com/tvix-go/tvix/castore"
	tvixfs "github.com/tvix-go/tvix/castore/fs"
	"github.com/tvix-go/tvix/nix/refscan"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/narcastore"
)

// MicroVM is the MicroVM build backend.
type MicroVM struct {
	Blobs castore.BlobService
	Dirs  castore.DirectoryService
	// Boot is the template of each VM: kernel, QEMU, accelerator, memory,
	// CPUs, init. Mode, store and ports are set per build.
	Boot boot.Config
	// Timeout kills a build (its VM) running longer (0: no limit).
	Timeout time.Duration
}

var _ build.Builder = (*MicroVM)(nil)

// maxNAR bounds what the guest may claim an output's NAR is.
const maxNAR = 1 << 40

// Build boots a VM for req and waits for its outputs.
func (m *MicroVM) Build(ctx context.Context, req *buildv1.BuildRequest, log io.Writer) (*buildv1.Build, error) {
	if err := build.Validate(req); err != nil {
		return nil, err
	}
	if err := build.CheckInputs(ctx, m.Blobs, m.Dirs, req); err != nil {
		return nil, err
	}
	if log == nil {
		log = io.Discard
	}
	needles, err := build.Needles(req)
	if err != nil {
		return nil, err
	}
	reqBytes, err := proto.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("microvm build: encode request: %w", err)
	}
	tmp, err := os.MkdirTemp("", "tvix-vm-build-")
	if err != nil {
		return nil, fmt.Errorf("microvm build: %w", err)
	}
	defer os.RemoveAll(tmp)
	sock := filepath.Join(tmp, "build.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("microvm build: listen for the result: %w", err)
	}
	defer lis.Close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		res *buildv1.Build
		err error
	}
	results := make(chan result, 1)
	go func() {
		conn, err := lis.Accept()
		if err != nil {
			results <- result{err: fmt.Errorf("microvm build: wait for QEMU: %w", err)}
			return
		}
		defer conn.Close()
		res, err := m.receive(ctx, req, conn, needles)
		results <- result{res, err}
	}()

	cfg := m.Boot
	cfg.Run, cfg.Shell, cfg.Find, cfg.System = nil, false, false, ""
	cfg.Build = true
	cfg.Socket = ""
	cfg.FS = tvixfs.NewRawFileSystem(ctx, tvixfs.Services{Blobs: m.Blobs, Directories: m.Dirs, Roots: build.InputRoots(req.GetInputs())},
		tvixfs.Options{ListRoot: true, FixedRoots: true})
	cfg.Files = map[string][]byte{guest.BuildRequestFile: reqBytes}
	cfg.Ports = []boot.Port{{Name: guest.BuildPort, Socket: sock}}
	cfg.Stdout, cfg.Stderr = log, log
	if m.Timeout > 0 {
		cfg.Timeout = m.Timeout
	}
	vm, err := boot.Run(ctx, cfg)
	if err != nil {
		if m.Timeout > 0 && vm.Total >= m.Timeout {
			return nil, &build.Failure{Message: fmt.Sprintf("builder timed out after %s", m.Timeout), ExitCode: -1, TimedOut: true}
		}
		return nil, fmt.Errorf("microvm build: %w", err)
	}
	lis.Close()
	select {
	case r := <-results:
		return r.res, r.err
	case <-time.After(10 * time.Second):
		return nil, fmt.Errorf("microvm build: the guest sent no result")
	}
}

// receive reads the guest's result stream (see guest.BuildPort).
func (m *MicroVM) receive(ctx context.Context, req *buildv1.BuildRequest, conn io.Reader, needles []storepath.StorePath) (*buildv1.Build, error) {
	r := bufio.NewReaderSize(conn, 1<<20)
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("microvm build: read the guest's result: %w", err)
	}
	code, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(line), "exit "))
	if err != nil || !strings.HasPrefix(line, "exit ") {
		return nil, fmt.Errorf("microvm build: the guest sent %q, want \"exit N\"", strings.TrimSpace(line))
	}
	if code != 0 {
		return nil, &build.Failure{Message: fmt.Sprintf("builder failed with exit code %d", code), ExitCode: code}
	}
	res := &buildv1.Build{BuildRequest: req}
	for _, o := range req.GetOutputs() {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("microvm build: read output /%s: %w", o, err)
		}
		line = strings.TrimSpace(line)
		if line == "missing" {
			return nil, &build.Failure{Message: fmt.Sprintf("builder failed to produce output path '/%s'", o), ExitCode: 0}
		}
		size, err := strconv.ParseInt(strings.TrimPrefix(line, "nar "), 10, 64)
		if err != nil || !strings.HasPrefix(line, "nar ") || size <= 0 || size > maxNAR {
			return nil, fmt.Errorf("microvm build: output /%s: the guest sent %q, want \"nar SIZE\"", o, line)
		}
		sc := refscan.New(needles)
		node, narSize, _, err := narcastore.Ingest(ctx, io.LimitReader(r, size), m.Blobs, m.Dirs, narcastore.WithScanner(sc))
		if err != nil {
			return nil, fmt.Errorf("microvm build: ingest output /%s: %w", o, err)
		}
		if int64(narSize) != size {
			return nil, fmt.Errorf("microvm build: output /%s: NAR of %d bytes, announced %d", o, narSize, size)
		}
		found := build.NeedleIndexes(needles, sc.Found())
		res.Outputs = append(res.Outputs, castore.RenameNode(node, []byte(strings.TrimPrefix(o, req.GetInputsDir()+"/"))))
		res.OutputsNeedles = append(res.OutputsNeedles, &buildv1.Build_OutputNeedles{Needles: found})
	}
	return res, nil
}
