// Package nixcache is a PathInfoService backed by a Nix binary cache
// (nix+http://, nix+https://, nix+file://): Get fetches the narinfo,
// checks its signature against the trusted keys, fetches and decompresses
// the NAR and ingests it into castore while hashing it, and returns the
// PathInfo only when NarHash and NarSize match. It stores nothing itself;
// put a Composite in front to keep what it fetched.
//
// URL: nix+https://cache.nixos.org?trusted-public-keys=<k1>%20<k2>. A
// narinfo needs a signature by one of those keys; without any key every
// path is refused unless the URL says allow-unsigned=true (the NAR hash is
// still checked, but the cache is then trusted for what the hash is).
// netrc-file=PATH (default ~/.netrc) supplies credentials for https caches.
// A "not found" is remembered for NegativeTTL; requests time out and are
// retried a bounded number of times on transient failures.
package nixcache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"os"
	"path"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/internal/netrc"
	"github.com/tvix-go/tvix/nix/narinfo"
	"github.com/tvix-go/tvix/nix/nixbase32"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/internal/decompress"
	"github.com/tvix-go/tvix/store/internal/stall"
	"github.com/tvix-go/tvix/store/narcastore"
	"github.com/tvix-go/tvix/store/pathinfo"
	"github.com/tvix-go/tvix/store/storev1"
)

// ErrUnsupported is returned by Put and List: a binary cache is read here.
var ErrUnsupported = errors.New("not supported by a binary cache path info service")

// Service reads one binary cache.
type Service struct {
	base          *url.URL // http(s) or file, without the nix+ prefix and our query
	trusted       []narinfo.PublicKey
	allowUnsigned bool
	client        *http.Client
	netrc         netrc.Entry
	blobs         castore.BlobService
	dirs          castore.DirectoryService
	bodyIdle      time.Duration // BodyIdleTimeout when opened
	// ingests bounds the NARs fetched and ingested at once (narParallel).
	ingests chan struct{}

	mu      sync.Mutex
	missing map[[storepath.DigestSize]byte]time.Time
}

// How caches are talked to.
const (
	NegativeTTL    = 5 * time.Minute
	RequestTimeout = 30 * time.Second // until response headers; bodies stream
	Retries        = 3
	retryBackoff   = 200 * time.Millisecond
)

// narParallel is how many NARs one cache fetches and ingests at once: a
// copy asks for more paths at once (closure.Copy eight, each path's
// references four more), but an ingest keeps a core busy decompressing
// and hashing, and each holds a decompressor's window and the chunker's
// buffers; beyond a NAR or two per core only memory grows (a closure of
// 90 small paths: 125 MB peak with eight, 63 MB with two, as fast).
var narParallel = max(2, runtime.GOMAXPROCS(0))

// BodyIdleTimeout ends a NAR download that has received nothing for that
// long: an upstream stalled mid-body would hold the fetch, and every
// reader of the path waiting on it, forever. A variable for tests.
var BodyIdleTimeout = 60 * time.Second

// Open makes a Service from a nix+… URL.
func Open(u *url.URL, blobs castore.BlobService, dirs castore.DirectoryService) (*Service, error) {
	base := *u
	scheme, ok := strings.CutPrefix(u.Scheme, "nix+")
	if !ok || (scheme != "http" && scheme != "https" && scheme != "file") {
		return nil, fmt.Errorf("binary cache %q: want nix+http, nix+https or nix+file", u.Redacted())
	}
	base.Scheme = scheme
	q := base.Query()
	var trusted []narinfo.PublicKey
	for _, k := range strings.Fields(q.Get("trusted-public-keys")) {
		pk, err := narinfo.ParsePublicKey(k)
		if err != nil {
			return nil, fmt.Errorf("binary cache %q: trusted-public-keys: %w", u.Redacted(), err)
		}
		trusted = append(trusted, pk)
	}
	allowUnsigned := q.Get("allow-unsigned") == "true" || q.Get("allow-unsigned") == "1"
	var creds netrc.Entry
	if scheme == "https" || scheme == "http" {
		nf := q.Get("netrc-file")
		if nf == "" {
			if home, err := os.UserHomeDir(); err == nil {
				nf = home + "/.netrc"
			}
		}
		var err error
		if creds, err = netrc.Lookup(nf, base.Hostname()); err != nil {
			return nil, fmt.Errorf("binary cache %q: netrc: %w", u.Redacted(), err)
		}
	}
	// The rest of the query configures tvix (blob_service=…), not the
	// cache, and is not sent to it.
	base.RawQuery = ""
	base.Path = strings.TrimSuffix(base.Path, "/")
	if scheme == "file" && (base.Host != "" || !strings.HasPrefix(base.Path, "/")) {
		return nil, fmt.Errorf("binary cache %q: want nix+file:///absolute/path", u.Redacted())
	}
	if scheme == "file" {
		// A mistyped directory would otherwise only ever answer "no such
		// path", and every substitution would quietly go elsewhere.
		if fi, err := os.Stat(base.Path); err != nil {
			return nil, fmt.Errorf("binary cache %q: %w", u.Redacted(), err)
		} else if !fi.IsDir() {
			return nil, fmt.Errorf("binary cache %q: %s is not a directory", u.Redacted(), base.Path)
		}
	}
	client := &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		ResponseHeaderTimeout: RequestTimeout,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   16,
		TLSHandshakeTimeout:   10 * time.Second,
	}}
	return &Service{base: &base, trusted: trusted, allowUnsigned: allowUnsigned, client: client, netrc: creds, bodyIdle: BodyIdleTimeout, ingests: make(chan struct{}, narParallel),
		blobs: blobs, dirs: dirs, missing: map[[storepath.DigestSize]byte]time.Time{}}, nil
}

var errAbsent = errors.New("absent")

// open fetches rel (a narinfo name or a narinfo's URL) from the cache;
// errAbsent when the cache says it has no such file.
func (s *Service) open(ctx context.Context, rel string) (io.ReadCloser, error) {
	ref, err := url.Parse(rel)
	if err != nil {
		return nil, fmt.Errorf("invalid URL %q: %w", rel, err)
	}
	if s.base.Scheme == "file" {
		if ref.IsAbs() || strings.Contains("/"+ref.Path+"/", "/../") {
			return nil, fmt.Errorf("URL %q leaves the cache", rel)
		}
		f, err := os.Open(path.Join(s.base.Path, ref.Path))
		if errors.Is(err, os.ErrNotExist) {
			return nil, errAbsent
		}
		return f, err
	}
	// A narinfo's URL may be absolute (another host) or relative to the
	// cache, as Nix allows.
	dir := *s.base
	dir.Path += "/"
	target := dir.ResolveReference(ref)
	var resp *http.Response
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
		if err != nil {
			return nil, err
		}
		if s.netrc.Login != "" {
			req.SetBasicAuth(s.netrc.Login, s.netrc.Password)
		}
		resp, err = s.client.Do(req)
		transient := err != nil || resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests
		if !transient || attempt+1 >= Retries || ctx.Err() != nil {
			if err != nil {
				return nil, err
			}
			break
		}
		if resp != nil {
			resp.Body.Close()
		}
		select {
		case <-time.After(retryBackoff << attempt):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusForbidden:
		resp.Body.Close()
		return nil, errAbsent
	case resp.StatusCode/100 != 2:
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s", target.Redacted(), resp.Status)
	}
	return resp.Body, nil
}

// Get fetches the path's narinfo and NAR.
func (s *Service) Get(ctx context.Context, digest [storepath.DigestSize]byte) (*storev1.PathInfo, error) {
	ni, err := s.NarInfo(ctx, digest)
	if err != nil {
		return nil, err
	}
	info, err := s.fetchNAR(ctx, ni)
	if err != nil {
		return nil, fmt.Errorf("binary cache %s: %s: %w", s.base.Redacted(), ni.StorePath, err)
	}
	return info, nil
}

// NarInfo fetches the path's narinfo alone, checked as Get checks it:
// what the cache offers, without fetching the NAR.
func (s *Service) NarInfo(ctx context.Context, digest [storepath.DigestSize]byte) (*narinfo.NarInfo, error) {
	hashPart := nixbase32.EncodeToString(digest[:])
	s.mu.Lock()
	until, known := s.missing[digest]
	s.mu.Unlock()
	if known && time.Now().Before(until) {
		return nil, fmt.Errorf("binary cache %s: %s: %w (remembered)", s.base.Redacted(), hashPart, pathinfo.ErrNotFound)
	}
	rc, err := s.open(ctx, hashPart+".narinfo")
	if errors.Is(err, errAbsent) {
		s.mu.Lock()
		if len(s.missing) > 100_000 {
			clear(s.missing)
		}
		s.missing[digest] = time.Now().Add(NegativeTTL)
		s.mu.Unlock()
		return nil, fmt.Errorf("binary cache %s: %s: %w", s.base.Redacted(), hashPart, pathinfo.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("binary cache %s: get %s.narinfo: %w", s.base.Redacted(), hashPart, err)
	}
	ni, err := narinfo.Parse(io.LimitReader(rc, 4<<20))
	rc.Close()
	if err != nil {
		return nil, fmt.Errorf("binary cache %s: %s.narinfo: %w", s.base.Redacted(), hashPart, err)
	}
	if ni.StorePath.Digest != digest {
		return nil, fmt.Errorf("binary cache %s: %s.narinfo describes %s", s.base.Redacted(), hashPart, ni.StorePath)
	}
	switch {
	case len(s.trusted) > 0 && len(ni.Verify(s.trusted)) == 0:
		return nil, fmt.Errorf("binary cache %s: %s: no signature by a trusted key", s.base.Redacted(), ni.StorePath)
	case len(s.trusted) == 0 && !s.allowUnsigned:
		return nil, fmt.Errorf("binary cache %s: %s: no trusted-public-keys configured, refusing to trust its narinfo (give trusted keys, or allow-unsigned=true)", s.base.Redacted(), ni.StorePath)
	}
	return ni, nil
}

func (s *Service) fetchNAR(ctx context.Context, ni *narinfo.NarInfo) (*storev1.PathInfo, error) {
	// A leaf: nothing waited for while a slot is held takes one.
	select {
	case s.ingests <- struct{}{}:
		defer func() { <-s.ingests }()
	case <-ctx.Done():
		return nil, fmt.Errorf("NAR %s: %w", ni.URL, context.Cause(ctx))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	body, err := s.open(ctx, ni.URL)
	if errors.Is(err, errAbsent) {
		return nil, fmt.Errorf("NAR %s is missing from the cache", ni.URL)
	}
	if err != nil {
		return nil, fmt.Errorf("get NAR %s: %w", ni.URL, err)
	}
	defer body.Close()
	rc := stall.Reader(body, s.bodyIdle, cancel)
	defer rc.Close()
	dec, err := decompress.Reader(ni.EffectiveCompression(), rc)
	if err != nil {
		return nil, fmt.Errorf("NAR %s: %w", ni.URL, err)
	}
	defer dec.Close()
	var nar io.Reader = dec
	if t := transfersFrom(ctx); t != nil {
		tr := t.start(ni.StorePath.String(), int64(ni.NarSize))
		defer t.end(ni.StorePath.String())
		nar = countingReader{dec, t, tr}
	}
	// Decompressing runs beside the ingest; on the way out the request is
	// cancelled first, which ends a read the goroutine may wait in.
	ahead := newAheadReader(nar)
	defer func() {
		cancel()
		ahead.Close()
	}()
	// A NAR longer than announced is cut off by the limit and then fails
	// to parse or to match: a hostile cache cannot make us read forever.
	root, size, sum, err := narcastore.Ingest(ctx, io.LimitReader(ahead, int64(ni.NarSize)+1), s.blobs, s.dirs)
	if err != nil {
		return nil, fmt.Errorf("NAR %s: %w", ni.URL, err)
	}
	if size != ni.NarSize || string(sum[:]) != string(ni.NarHash.Digest) {
		return nil, fmt.Errorf("NAR %s is sha256:%s, %d bytes; narinfo says %s, %d bytes",
			ni.URL, nixbase32.EncodeToString(sum[:]), size, ni.NarHash, ni.NarSize)
	}
	return pathinfo.FromNarInfo(ni, root)
}

// Put is not supported.
func (s *Service) Put(context.Context, *storev1.PathInfo) (*storev1.PathInfo, error) {
	return nil, fmt.Errorf("binary cache %s: put: %w", s.base.Redacted(), ErrUnsupported)
}

// List is not supported.
func (s *Service) List(context.Context) iter.Seq2[*storev1.PathInfo, error] {
	return func(yield func(*storev1.PathInfo, error) bool) {
		yield(nil, fmt.Errorf("binary cache %s: list: %w", s.base.Redacted(), ErrUnsupported))
	}
}

func (s *Service) Close() error { return nil }
