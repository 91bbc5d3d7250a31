// Package daemon composes a tvix daemon from a Config: the store's
// services opened from URLs (with substituters behind them), and whatever
// the Config asks to serve: gRPC (castore and PathInfo services, health),
// nar-bridge (a Nix binary cache over HTTP), a FUSE mount, virtio-fs for
// VMs and the /eval endpoint. cmd/tvix only turns flags into a Config.
package daemon

import (
	"time"

	"github.com/tvix-go/tvix/store/registry"
)

// Config says what a daemon opens and serves. The zero value of each
// server's section leaves that server off.
type Config struct {
	// Store names the services; Registry resolves them (nil: every
	// built-in scheme).
	Store    registry.Addrs
	Registry *registry.Registry
	// StoreConfig, when set, is a composition file (see
	// registry.ParseComposition) describing the services instead of Store.
	StoreConfig string
	// Substituters are asked, in order, for paths the store lacks;
	// Substitution says which binary cache signatures to trust.
	Substituters []string
	Substitution registry.Substitution

	// GRPC lists listen addresses for the gRPC services:
	// unix:///path.sock or tcp://host:port. A TCP address without a host
	// (tcp://:PORT) binds 127.0.0.1: the services read and write the
	// whole store, so other machines get in only when named (0.0.0.0).
	GRPC []string
	// SocketGroup (a group name or numeric id) owns the unix sockets the
	// daemon creates, which are 0660: its members may connect. Empty:
	// the daemon's own group.
	SocketGroup string
	// Limits bound uploads (nar-bridge and gRPC); the zero value is the
	// defaults.
	Limits   Limits
	HTTP     HTTPConfig
	Mount    MountConfig
	VirtioFS VirtioFSConfig
	Eval     EvalConfig
	Build    BuildConfig
	// GCRootsDir holds indirect roots (like /nix/var/nix/gcroots): symlinks
	// to store paths, or, in auto/, to symlinks that point at them.
	GCRootsDir string
	NixDaemon  NixDaemonConfig
}

// BuildConfig serves Tvix's BuildService: builds run in the local sandbox
// against the daemon's store (inputs read lazily through its
// substituters), and the same listener serves the castore and PathInfo
// services, so clients fetch the outputs from it.
type BuildConfig struct {
	Listen []string
	// Jobs is how many builds run at once (0: 1); more wait.
	Jobs                   int
	Timeout, MaxSilentTime time.Duration
	// Backend is "sandbox" (default) or "microvm"; VMMemoryMB sizes each
	// MicroVM (0: 512).
	Backend    string
	VMMemoryMB int
	// VMInit is the guest's tvix-init ("": next to tvix, or in PATH).
	VMInit string
}

// HTTPConfig is nar-bridge: the store as a Nix binary cache.
type HTTPConfig struct {
	// Listen is host:port (or tcp://host:port, unix:///path.sock); an
	// empty host is 127.0.0.1.
	Listen string
	// SigningKeyFile holds a Nix secret key; served narinfos are signed.
	SigningKeyFile string
	// Priority is announced in nix-cache-info (0: 39, as Nix's default
	// for caches that do not say).
	Priority int
	// Uploads are refused unless UploadAuthFile or AllowAnonymousUploads
	// is set; ReadOnly refuses them whatever else is set.
	ReadOnly bool
	// UploadAuthFile holds `user:password` lines: who may upload (HTTP
	// Basic, as Nix sends from its netrc-file, or the password as a
	// Bearer token).
	UploadAuthFile string
	// AllowAnonymousUploads lets anyone who can connect upload; Start
	// refuses it unless the listener is loopback or a unix socket.
	AllowAnonymousUploads bool
	// ChunkCache bounds the verified chunks kept in memory for serving
	// (narbridge.Options.ChunkCache: 0 its default, negative none).
	ChunkCache int64
}

// MountConfig is the lazy read-only FUSE mount of the store.
type MountConfig struct {
	Path                                string
	ListRoot, AllowOther, AllowNonEmpty bool
}

// VirtioFSConfig serves the store to VMs as a vhost-user virtio-fs device.
type VirtioFSConfig struct {
	Socket   string
	ListRoot bool
}

// EvalConfig is POST /eval. Evaluation reads any file the daemon may
// read, so it has a listener of its own: a unix socket or a loopback port.
type EvalConfig struct {
	Listen string
	// Jobs is how many evaluations run at once (0: 1); more wait.
	Jobs int
}

// serves says whether the Config asks for anything to be served.
func (c Config) serves() bool {
	return len(c.GRPC) > 0 || c.HTTP.Listen != "" || c.Mount.Path != "" || c.VirtioFS.Socket != "" || c.Eval.Listen != "" || len(c.Build.Listen) > 0 || len(c.NixDaemon.Listen) > 0
}
