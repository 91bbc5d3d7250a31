// Package registry opens the store's three services (blobs, directories,
// path infos) from URLs. Every scheme is one entry with one constructor
// per kind of service it can serve, registered explicitly (no init-time
// side effects, no blank imports), so one scheme means one thing
// everywhere and `--help` lists exactly what works.
//
// Services opened together share what they can: one gRPC connection per
// address for all three kinds, one bbolt file for directories and path
// infos. A binary cache (nix+…) is a path-info service that puts the
// contents it fetches into the blob and directory services opened with it.
package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"

	"google.golang.org/grpc"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/store/pathinfo"
	"github.com/tvix-go/tvix/store/pgstore"
)

// Kind is one of the three services.
type Kind int

const (
	Blob Kind = iota
	Directory
	PathInfo
)

func (k Kind) String() string {
	switch k {
	case Blob:
		return "blob service"
	case Directory:
		return "directory service"
	}
	return "path info service"
}

// Scheme is one URL scheme. A nil constructor means the scheme does not
// serve that kind.
type Scheme struct {
	Name string
	// Doc is a one-line description for --help.
	Doc       string
	Blob      func(ctx context.Context, u *url.URL, o *Opener) (castore.BlobService, error)
	Directory func(ctx context.Context, u *url.URL, o *Opener) (castore.DirectoryService, error)
	PathInfo  func(ctx context.Context, u *url.URL, o *Opener) (pathinfo.Service, error)
}

func (s Scheme) serves(k Kind) bool {
	switch k {
	case Blob:
		return s.Blob != nil
	case Directory:
		return s.Directory != nil
	}
	return s.PathInfo != nil
}

// Registry maps scheme names to schemes.
type Registry struct {
	schemes map[string]Scheme
}

// New makes a registry of the given schemes; a name given twice is a
// programming error reported at once.
func New(schemes ...Scheme) (*Registry, error) {
	r := &Registry{schemes: map[string]Scheme{}}
	for _, s := range schemes {
		if err := r.Register(s); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Register adds a scheme.
func (r *Registry) Register(s Scheme) error {
	if s.Name == "" {
		return errors.New("register scheme: no name")
	}
	if _, dup := r.schemes[s.Name]; dup {
		return fmt.Errorf("register scheme %q: already registered", s.Name)
	}
	r.schemes[s.Name] = s
	return nil
}

// Names lists the schemes serving k, sorted.
func (r *Registry) Names(k Kind) []string {
	var out []string
	for n, s := range r.schemes {
		if s.serves(k) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// Scheme returns the scheme of an address, or an error naming the
// address and what would have worked.
func (r *Registry) Scheme(k Kind, raw string) (Scheme, *url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Scheme{}, nil, fmt.Errorf("%s %q: %w", k, raw, err)
	}
	if u.Scheme == "" {
		return Scheme{}, nil, fmt.Errorf("%s %q: no scheme (want one of %s)", k, raw, strings.Join(r.Names(k), ", "))
	}
	s, ok := r.schemes[u.Scheme]
	if !ok || !s.serves(k) {
		return Scheme{}, nil, fmt.Errorf("%s %q: unknown scheme %q (want one of %s)", k, raw, u.Scheme, strings.Join(r.Names(k), ", "))
	}
	return s, u, nil
}

// Opener opens services that belong together and holds what they share.
// Close it when they are closed (Services does).
type Opener struct {
	reg *Registry
	// Blobs and Dirs are where a path-info service that fetches contents
	// (a binary cache) puts them; set by OpenServices before the path
	// info service is opened.
	Blobs castore.BlobService
	Dirs  castore.DirectoryService
	// Substitution is what binary caches check narinfos against, unless
	// their URL says otherwise.
	Substitution Substitution

	conns map[string]*grpc.ClientConn
	// pg pools, one per database URL for its directory and path-info
	// services alike.
	pg map[string]*pgstore.DB
}

// Substitution configures binary caches opened without keys in their URL.
type Substitution struct {
	TrustedPublicKeys []string
	AllowUnsigned     bool
}

// NewOpener starts a set of services.
func (r *Registry) NewOpener(sub Substitution) *Opener {
	return &Opener{reg: r, Substitution: sub, conns: map[string]*grpc.ClientConn{}, pg: map[string]*pgstore.DB{}}
}

// Conn returns the connection for a gRPC address, dialing it once: the
// three services of one daemon share it.
func (o *Opener) Conn(ctx context.Context, u *url.URL) (*grpc.ClientConn, error) {
	key := u.Scheme + "://" + u.Host + u.Path
	if c, ok := o.conns[key]; ok {
		return c, nil
	}
	c, err := dialGRPC(ctx, u)
	if err != nil {
		return nil, err
	}
	o.conns[key] = c
	return c, nil
}

// Postgres returns the pool for a postgres:// URL, connecting (and
// migrating the schema) once.
func (o *Opener) Postgres(ctx context.Context, u *url.URL) (*pgstore.DB, error) {
	key := u.String()
	if db, ok := o.pg[key]; ok {
		return db, nil
	}
	db, err := pgstore.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	o.pg[key] = db
	return db, nil
}

// Close closes the shared connections.
func (o *Opener) Close() error {
	var errs []error
	for k, c := range o.conns {
		errs = append(errs, c.Close())
		delete(o.conns, k)
	}
	for k, db := range o.pg {
		errs = append(errs, db.Close())
		delete(o.pg, k)
	}
	return errors.Join(errs...)
}

// BlobService opens the blob service raw names.
func (o *Opener) BlobService(ctx context.Context, raw string) (castore.BlobService, error) {
	s, u, err := o.reg.Scheme(Blob, raw)
	if err != nil {
		return nil, err
	}
	svc, err := s.Blob(ctx, u, o)
	if err != nil {
		return nil, fmt.Errorf("blob service %q: %w", u.Redacted(), err)
	}
	return svc, nil
}

// DirectoryService opens the directory service raw names.
func (o *Opener) DirectoryService(ctx context.Context, raw string) (castore.DirectoryService, error) {
	s, u, err := o.reg.Scheme(Directory, raw)
	if err != nil {
		return nil, err
	}
	svc, err := s.Directory(ctx, u, o)
	if err != nil {
		return nil, fmt.Errorf("directory service %q: %w", u.Redacted(), err)
	}
	return svc, nil
}

// PathInfoService opens the path info service raw names.
func (o *Opener) PathInfoService(ctx context.Context, raw string) (pathinfo.Service, error) {
	s, u, err := o.reg.Scheme(PathInfo, raw)
	if err != nil {
		return nil, err
	}
	svc, err := s.PathInfo(ctx, u, o)
	if err != nil {
		return nil, fmt.Errorf("path info service %q: %w", u.Redacted(), err)
	}
	return svc, nil
}

// Addrs names a store's services; PathInfo may be empty for commands that
// need only the castore.
type Addrs struct {
	Blob, Directory, PathInfo string
}

// Services are a store's services, opened together.
type Services struct {
	Blobs       castore.BlobService
	Directories castore.DirectoryService
	// PathInfos is nil when Addrs.PathInfo was empty.
	PathInfos pathinfo.Service
	// Upstreams are the blob services of substituters that lend their
	// castore read-through (Blobs reads from them on a near miss).
	Upstreams []castore.BlobService

	closers []io.Closer
}

// ReceivedBytes is how many blob bytes were read from the upstreams so
// far, where their clients count it.
func (s *Services) ReceivedBytes() uint64 {
	var n uint64
	for _, u := range s.Upstreams {
		if c, ok := castore.As[interface{ ReceivedBytes() uint64 }](u); ok {
			n += c.ReceivedBytes()
		}
	}
	return n
}

// Close closes every service, then what they shared.
func (s *Services) Close() error {
	var errs []error
	for i := len(s.closers) - 1; i >= 0; i-- {
		errs = append(errs, s.closers[i].Close())
	}
	s.closers = nil
	return errors.Join(errs...)
}

// Open opens the services a names, then layers the substituters (if any)
// behind them (see WithSubstituters).
func (r *Registry) Open(ctx context.Context, a Addrs, sub Substitution, substituters ...string) (*Services, error) {
	o := r.NewOpener(sub)
	s := &Services{closers: []io.Closer{o}}
	fail := func(err error) (*Services, error) {
		s.Close()
		return nil, err
	}
	var err error
	if s.Blobs, err = o.BlobService(ctx, a.Blob); err != nil {
		return fail(err)
	}
	s.closers = append(s.closers, s.Blobs)
	if s.Directories, err = o.DirectoryService(ctx, a.Directory); err != nil {
		return fail(err)
	}
	s.closers = append(s.closers, s.Directories)
	o.Blobs, o.Dirs = s.Blobs, s.Directories
	if a.PathInfo == "" {
		if len(substituters) > 0 {
			return fail(errors.New("substituters need a path info service"))
		}
		return s, nil
	}
	if s.PathInfos, err = o.PathInfoService(ctx, a.PathInfo); err != nil {
		return fail(err)
	}
	s.closers = append(s.closers, s.PathInfos)
	if err := s.withSubstituters(ctx, o, substituters); err != nil {
		return fail(err)
	}
	return s, nil
}
