// Package narbridge serves a Nix HTTP binary cache over the castore and
// PathInfo services, as Tvix's nar-bridge does: narinfos are made from
// PathInfos, NARs are rendered from castore on the fly (their URL carries
// the root node), and uploads from `nix copy --to http://…` are ingested
// straight into castore while they are decompressed and hashed.
//
// Upload protocol (Nix 2.8): HEAD <hash>.narinfo (404 = missing), HEAD
// nar/<file hash>.nar<ext> (always 404 here, so Nix uploads), PUT the NAR,
// PUT the narinfo last. The NAR is kept in a bounded pending table until a
// narinfo names it (by URL, else by NarHash) with a matching NarHash and
// NarSize; only then is a PathInfo stored.
package narbridge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/internal/meminfo"
	"github.com/tvix-go/tvix/nix/narinfo"
	"github.com/tvix-go/tvix/nix/nixbase32"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/internal/compress"
	"github.com/tvix-go/tvix/store/internal/decompress"
	"github.com/tvix-go/tvix/store/narcastore"
	"github.com/tvix-go/tvix/store/pathinfo"
	"github.com/tvix-go/tvix/store/storev1"
)

// Options configure a Handler; the zero value is usable.
type Options struct {
	// Priority is announced in nix-cache-info (default 39, as nar-bridge).
	Priority int
	// SigningKey, when set, signs every narinfo served.
	SigningKey *narinfo.SecretKey
	// Uploads (PUT) are off unless UploadCredentials or
	// AllowAnonymousUploads say who may make them; ReadOnly turns them off
	// whatever those say.
	ReadOnly bool
	// UploadCredentials are the users who may upload; others get 401.
	UploadCredentials *Credentials
	// AllowAnonymousUploads lets anyone who can connect upload (with
	// UploadCredentials too: anyone sending no credentials). Whether that
	// is safe depends on who can connect, which the caller decides.
	AllowAnonymousUploads bool
	// MaxPending bounds NARs uploaded but not yet named by a narinfo
	// (default 1000); PendingTTL is how long they wait (default 1h).
	MaxPending int
	PendingTTL time.Duration
	Logger     *slog.Logger
	// BodyIdleTimeout ends an upload that sent nothing for that long
	// (default 60s): a client trickling its body would otherwise hold a
	// connection, and an ingest, forever.
	BodyIdleTimeout time.Duration
	// MaxUploadsPerClient bounds the uploads one uploader (user, or
	// address when anonymous) has running at once (default 16); more get
	// 429.
	MaxUploadsPerClient int
	// Compression of the NARs narinfos point at: "none" (default), "zstd"
	// or "xz"; the NAR URL then carries the suffix and the bridge
	// compresses while rendering.
	Compression string
	// Limits bound uploaded NARs (the daemon sets its configured ones;
	// zero fields: none). MaxNarinfoSize bounds an uploaded narinfo
	// (default 2 MiB).
	Limits         narcastore.Limits
	MaxNarinfoSize int64
	// ChunkCache is how many bytes of verified chunks the blob service
	// keeps in memory for serving (0: DefaultChunkCache; negative: none),
	// when it is a local blob store that can (blobstore.Store): chunks
	// served again are sent from there, not read from disk and hashed
	// again. It is shared by everything using that blob service.
	ChunkCache int64
	// CompressLoopback answers Accept-Encoding: zstd from loopback clients
	// too (tests); by default they get the NAR uncompressed, which is
	// faster for them.
	CompressLoopback bool
}

// DefaultChunkCache is Options.ChunkCache's default: an eighth of the
// memory the process may use (RAM, or its cgroup's limit), between
// 256 MiB and 16 GiB; 1 GiB where that is unknown. A server's working
// set is what it serves again (a closure being fetched by many clients),
// and every chunk read from disk instead is hashed again: on two cores
// that halves what a connection gets (docs/benchmarks-narbridge.md). The
// cache only holds what was read, and gives memory back while the system
// is short of it (blobstore's chunk cache).
func DefaultChunkCache() int64 {
	m, err := meminfo.Read()
	if err != nil {
		return 1 << 30
	}
	return defaultChunkCache(m.Total)
}

func defaultChunkCache(total int64) int64 {
	return min(max(total/8, 256<<20), 16<<30)
}

// chunkCacher is a blob service that can keep verified chunks in memory.
type chunkCacher interface{ SetChunkCache(max int64) }

// LimitNarinfoSize names the narinfo size limit, as the daemon's flag does.
const LimitNarinfoSize = "max-narinfo-size"

// narSuffixes maps the compression in a NAR URL's suffix.
var narSuffixes = map[string]string{".zst": "zstd", ".xz": "xz"}

// Handler is the binary cache.
type Handler struct {
	blobs    castore.BlobService
	dirs     castore.DirectoryService
	pathInfo pathinfo.Service
	opts     Options
	log      *slog.Logger
	pending  *pendingTable
	cache    int64 // bytes of the blob service's chunk cache set by New; 0: none

	mu      sync.Mutex
	uploads map[string]int // running uploads per uploader
}

const (
	// maxNodeProto bounds the root node carried in a NAR URL.
	maxNodeProto = 4096
	// defaultMaxNarinfo bounds an uploaded narinfo: a thousand times
	// one with a hundred references and signatures.
	defaultMaxNarinfo = 2 << 20
	narURLPrefix      = "nar/tvix-castore/"
)

// New returns a Handler over the three services.
func New(blobs castore.BlobService, dirs castore.DirectoryService, pathInfo pathinfo.Service, opts Options) *Handler {
	if opts.Priority == 0 {
		opts.Priority = 39
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = 1000
	}
	if opts.PendingTTL <= 0 {
		opts.PendingTTL = time.Hour
	}
	if opts.BodyIdleTimeout <= 0 {
		opts.BodyIdleTimeout = 60 * time.Second
	}
	if opts.MaxUploadsPerClient <= 0 {
		opts.MaxUploadsPerClient = 16
	}
	if opts.MaxNarinfoSize <= 0 {
		opts.MaxNarinfoSize = defaultMaxNarinfo
	}
	if opts.ChunkCache == 0 {
		opts.ChunkCache = DefaultChunkCache()
	}
	var cache int64
	if cc, ok := castore.As[chunkCacher](blobs); ok {
		cache = max(opts.ChunkCache, 0)
		cc.SetChunkCache(cache)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Handler{blobs: blobs, dirs: dirs, pathInfo: pathInfo, opts: opts, log: log, cache: cache,
		pending: newPendingTable(opts.MaxPending, opts.PendingTTL), uploads: map[string]int{}}
}

// ChunkCache is how many bytes of verified chunks the blob service keeps
// in memory for this handler (0: none, or a blob service that cannot).
func (h *Handler) ChunkCache() int64 { return h.cache }

// statusWriter records what was answered, for the access log.
type statusWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (read
// deadlines for uploads).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ReadFrom keeps the connection's own ReadFrom (sendfile) reachable
// through the wrapper.
func (w *statusWriter) ReadFrom(src io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	rf, ok := w.ResponseWriter.(io.ReaderFrom)
	if !ok {
		return io.Copy(writerOnly{w}, src)
	}
	n, err := rf.ReadFrom(src)
	w.n += n
	return n, err
}

// writerOnly hides a writer's ReadFrom from io.Copy, which would otherwise
// call it back.
type writerOnly struct{ io.Writer }

// connReaderFrom is w's way to the connection's sendfile, or nil when
// there is none (HTTP/2, a recorder).
func connReaderFrom(w http.ResponseWriter) io.ReaderFrom {
	sw, ok := w.(*statusWriter)
	if !ok {
		return nil
	}
	if _, ok := sw.ResponseWriter.(io.ReaderFrom); !ok {
		return nil
	}
	return sw
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

func (h *Handler) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	start := time.Now()
	w := &statusWriter{ResponseWriter: rw}
	h.route(w, r)
	if w.status == 0 {
		w.status = http.StatusOK
	}
	h.log.Debug("http", "method", r.Method, "path", r.URL.RequestURI(), "status", w.status,
		"bytes", w.n, "duration", time.Since(start), "remote", r.RemoteAddr)
}

func (h *Handler) route(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	get := r.Method == http.MethodGet || r.Method == http.MethodHead
	switch {
	case p == "/":
		if !get {
			methodNotAllowed(w, "GET, HEAD")
			return
		}
		io.WriteString(w, "Hello from nar-bridge")
	case p == "/nix-cache-info":
		if !get {
			methodNotAllowed(w, "GET, HEAD")
			return
		}
		w.Header().Set("Content-Type", "text/x-nix-cache-info")
		fmt.Fprintf(w, "StoreDir: %s\nWantMassQuery: 1\nPriority: %d\n", storepath.StoreDir, h.opts.Priority)
	case strings.HasPrefix(p, "/"+narURLPrefix):
		if !get {
			methodNotAllowed(w, "GET, HEAD")
			return
		}
		h.getNAR(w, r, strings.TrimPrefix(p, "/"+narURLPrefix))
	case strings.HasPrefix(p, "/nar/"):
		switch {
		case r.Method == http.MethodHead:
			// Nix skips the NAR upload of a URL that exists, and a
			// narinfo commits only a NAR its uploader sent: so Nix
			// always sends it.
			http.NotFound(w, r)
		case get:
			h.getUploadedNAR(w, r, strings.TrimPrefix(p, "/"))
		case r.Method == http.MethodPut:
			h.putNAR(w, r, strings.TrimPrefix(p, "/"))
		default:
			methodNotAllowed(w, "GET, HEAD, PUT")
		}
	case strings.HasSuffix(p, ".narinfo") && strings.Count(p, "/") == 1:
		hashPart := strings.TrimSuffix(strings.TrimPrefix(p, "/"), ".narinfo")
		digest, err := parseHashPart(hashPart)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		switch {
		case get:
			h.getNarinfo(w, r, digest)
		case r.Method == http.MethodPut:
			h.putNarinfo(w, r, digest)
		default:
			methodNotAllowed(w, "GET, HEAD, PUT")
		}
	default:
		http.NotFound(w, r)
	}
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
}

func parseHashPart(s string) ([storepath.DigestSize]byte, error) {
	var d [storepath.DigestSize]byte
	if len(s) != storepath.EncodedDigestLen {
		return d, fmt.Errorf("invalid narinfo name %q: want 32 nixbase32 characters", s)
	}
	b, err := nixbase32.DecodeString(s)
	if err != nil {
		return d, fmt.Errorf("invalid narinfo name %q: %v", s, err)
	}
	copy(d[:], b)
	return d, nil
}

// NARURL is where the NAR of an (anonymous) root node is served: the node
// itself travels in the URL, so serving it needs no lookup.
func NARURL(root *castorev1.Node, narSize uint64) (string, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(castore.RenameNode(root, nil))
	if err != nil {
		return "", fmt.Errorf("encode root node: %w", err)
	}
	return narURLPrefix + base64.RawURLEncoding.EncodeToString(b) + "?narsize=" + strconv.FormatUint(narSize, 10), nil
}

func (h *Handler) getNarinfo(w http.ResponseWriter, r *http.Request, digest [storepath.DigestSize]byte) {
	info, err := h.pathInfo.Get(r.Context(), digest)
	if errors.Is(err, pathinfo.ErrNotFound) {
		http.NotFound(w, r)
		return
	}
	if err != nil {
		h.log.Error("get path info", "hash", nixbase32.EncodeToString(digest[:]), "err", err)
		http.Error(w, "get path info failed", http.StatusInternalServerError)
		return
	}
	ni, err := pathinfo.ToNarInfo(info)
	if err == nil {
		ni.URL, err = NARURL(info.GetNode(), ni.NarSize)
	}
	if err != nil {
		// A stored PathInfo we cannot describe is as good as absent to Nix.
		h.log.Warn("unusable path info", "hash", nixbase32.EncodeToString(digest[:]), "err", err)
		http.NotFound(w, r)
		return
	}
	if ni.StorePath.Digest != digest {
		h.log.Warn("path info stored under another hash", "asked", nixbase32.EncodeToString(digest[:]), "got", ni.StorePath)
		http.NotFound(w, r)
		return
	}
	// Closure invariant: a path is only offered when all its references
	// can be had too, so `nix copy --from` never stops at a missing one.
	for i, ref := range info.GetReferences() {
		var rd [storepath.DigestSize]byte
		copy(rd[:], ref)
		if rd == digest {
			continue
		}
		if _, err := h.pathInfo.Get(r.Context(), rd); err != nil {
			h.log.Warn("not serving path: reference unavailable", "path", ni.StorePath, "reference", info.GetNarinfo().GetReferenceNames()[i], "err", err)
			if errors.Is(err, pathinfo.ErrNotFound) {
				http.NotFound(w, r)
			} else {
				http.Error(w, "reference lookup failed", http.StatusBadGateway)
			}
			return
		}
	}
	// Uncompressed, the file is the NAR.
	ni.Compression, ni.FileHash, ni.FileSize = "none", &ni.NarHash, ni.NarSize
	switch h.opts.Compression {
	case "zstd":
		ni.Compression, ni.URL, ni.FileHash, ni.FileSize = "zstd", strings.Replace(ni.URL, "?", ".zst?", 1), nil, 0
	case "xz":
		ni.Compression, ni.URL, ni.FileHash, ni.FileSize = "xz", strings.Replace(ni.URL, "?", ".xz?", 1), nil, 0
	}
	if h.opts.SigningKey != nil {
		ni.Sign(*h.opts.SigningKey)
	}
	body := ni.String()
	w.Header().Set("Content-Type", "text/x-nix-narinfo")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method == http.MethodHead {
		return
	}
	io.WriteString(w, body)
}

// lazyWriter sends the response header with the first byte, so a render
// that fails before producing anything can still answer with an error.
// File contents reach it through ReadFrom, which sends what lies in local
// files with sendfile.
type lazyWriter struct {
	w       http.ResponseWriter
	size    uint64
	started bool
	files   fileSender
}

func (l *lazyWriter) ReadFrom(src io.Reader) (int64, error) {
	var n int64
	if lr, ok := src.(*io.LimitedReader); ok {
		l.start()
		m, err := l.files.send(lr, l.w)
		if n += m; err != nil {
			return n, err
		}
	}
	m, err := io.Copy(writerOnly{l}, src)
	return n + m, err
}

func (l *lazyWriter) Write(p []byte) (int, error) {
	l.start()
	return l.w.Write(p)
}

func (l *lazyWriter) start() {
	if !l.started {
		l.started = true
		hd := l.w.Header()
		hd.Set("Content-Type", "application/x-nix-nar")
		hd.Set("Cache-Control", "max-age=31536000, immutable")
		hd.Set("Content-Length", strconv.FormatUint(l.size, 10))
		l.w.WriteHeader(http.StatusOK)
	}
}

func (h *Handler) getNAR(w http.ResponseWriter, r *http.Request, b64 string) {
	compression := "none"
	for suffix, c := range narSuffixes {
		if trimmed, ok := strings.CutSuffix(b64, suffix); ok {
			b64, compression = trimmed, c
		}
	}
	raw, err := base64.RawURLEncoding.DecodeString(b64)
	if err != nil {
		http.Error(w, "invalid NAR URL: root node is not base64url", http.StatusNotFound)
		return
	}
	if len(raw) > maxNodeProto {
		http.Error(w, fmt.Sprintf("invalid NAR URL: root node is %d bytes, limit %d", len(raw), maxNodeProto), http.StatusBadRequest)
		return
	}
	var node castorev1.Node
	if err := proto.Unmarshal(raw, &node); err != nil {
		http.Error(w, "invalid NAR URL: root node does not decode", http.StatusNotFound)
		return
	}
	if len(castore.NodeName(&node)) != 0 {
		http.Error(w, "invalid NAR URL: root node has a name", http.StatusBadRequest)
		return
	}
	if err := castore.ValidateNode(&node); err != nil {
		http.Error(w, "invalid NAR URL: "+err.Error(), http.StatusBadRequest)
		return
	}
	narSize, err := strconv.ParseUint(r.URL.Query().Get("narsize"), 10, 64)
	if err != nil {
		http.Error(w, "invalid NAR URL: narsize missing or not a number", http.StatusBadRequest)
		return
	}
	h.serveNAR(w, r, &node, narSize, compression)
}

// getUploadedNAR answers a URL a NAR was uploaded at, which Nix asks for
// with the narinfo it remembers from the upload: the NAR is rendered from
// castore and compressed as the URL's extension says. The bytes are not
// the uploaded file's (compressors differ), but Nix checks the NarHash of
// what it unpacks, not the file hash.
func (h *Handler) getUploadedNAR(w http.ResponseWriter, r *http.Request, url string) {
	files, ok := castore.As[pathinfo.NARFiles](h.pathInfo)
	if !ok {
		http.NotFound(w, r)
		return
	}
	_, ext, _ := strings.Cut(strings.TrimPrefix(url, "nar/"), ".nar")
	compression, known := decompress.ByExtension[ext]
	if !known {
		http.NotFound(w, r)
		return
	}
	digest, err := files.GetNARFile(r.Context(), url)
	if err == nil {
		var info *storev1.PathInfo
		if info, err = h.pathInfo.Get(r.Context(), digest); err == nil {
			h.serveNAR(w, r, castore.RenameNode(info.GetNode(), nil), info.GetNarinfo().GetNarSize(), compression)
			return
		}
	}
	if errors.Is(err, pathinfo.ErrNotFound) {
		http.NotFound(w, r)
		return
	}
	h.log.Error("look up uploaded NAR", "url", url, "err", err)
	http.Error(w, "look up NAR failed", http.StatusInternalServerError)
}

// serveNAR renders node's NAR, compressed as asked.
func (h *Handler) serveNAR(w http.ResponseWriter, r *http.Request, node *castorev1.Node, narSize uint64, compression string) {
	if compression != "none" {
		h.getCompressedNAR(w, r, node, compression, false)
		return
	}
	w.Header().Set("Vary", "Accept-Encoding")
	if h.zstdEncoding(r) {
		h.getCompressedNAR(w, r, node, "zstd", true)
		return
	}
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Type", "application/x-nix-nar")
		w.Header().Set("Content-Length", strconv.FormatUint(narSize, 10))
		w.Header().Set("Accept-Ranges", "bytes")
		return
	}
	if rng := r.Header.Get("Range"); rng != "" {
		h.getNARRange(w, r, node, narSize, rng)
		return
	}
	lw := &lazyWriter{w: w, size: narSize, files: fileSender{to: connReaderFrom(w)}}
	defer lw.files.close()
	if err := narcastore.Render(r.Context(), lw, node, h.blobs, h.dirs); err != nil {
		h.log.Warn("render NAR", "err", err)
		if !lw.started {
			if errors.Is(err, castore.ErrNotFound) {
				http.Error(w, "NAR contents not found", http.StatusNotFound)
			} else {
				http.Error(w, "render NAR failed", http.StatusInternalServerError)
			}
			return
		}
		// Mid-stream: the short body (or Content-Length overrun) tells
		// the client; abort the connection so it cannot miss it.
		panic(http.ErrAbortHandler)
	}
	if !lw.started {
		lw.Write(nil)
	}
}

func (h *Handler) startUpload(owner string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.uploads[owner] >= h.opts.MaxUploadsPerClient {
		return false
	}
	h.uploads[owner]++
	return true
}

func (h *Handler) endUpload(owner string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.uploads[owner]--; h.uploads[owner] <= 0 {
		delete(h.uploads, owner)
	}
}

// idleBody moves the connection's read deadline forward before each read
// of the body, so an upload fails once it sends nothing for
// BodyIdleTimeout, however long it takes in all.
func (h *Handler) idleBody(w http.ResponseWriter, body io.ReadCloser) io.ReadCloser {
	return &idleReader{ReadCloser: body, rc: http.NewResponseController(w), idle: h.opts.BodyIdleTimeout}
}

type idleReader struct {
	io.ReadCloser
	rc   *http.ResponseController
	idle time.Duration
}

func (r *idleReader) Read(p []byte) (int, error) {
	// A server without deadlines (a test's recorder) only loses the bound.
	_ = r.rc.SetReadDeadline(time.Now().Add(r.idle))
	return r.ReadCloser.Read(p)
}

// hashingReader hashes and counts the raw (compressed) upload.
type hashingReader struct {
	r io.Reader
	h hash.Hash
	n uint64
}

func (hr *hashingReader) Read(p []byte) (int, error) {
	n, err := hr.r.Read(p)
	hr.h.Write(p[:n])
	hr.n += uint64(n)
	return n, err
}

func (h *Handler) putNAR(w http.ResponseWriter, r *http.Request, url string) {
	owner, ok := h.uploader(w, r)
	if !ok {
		return
	}
	if !h.startUpload(owner) {
		http.Error(w, fmt.Sprintf("too many uploads at once from this client (limit %d)", h.opts.MaxUploadsPerClient), http.StatusTooManyRequests)
		return
	}
	defer h.endUpload(owner)
	r.Body = h.idleBody(w, r.Body)
	name := strings.TrimPrefix(url, "nar/")
	hashPart, ext, ok := strings.Cut(name, ".nar")
	compression, known := decompress.ByExtension[ext]
	if !ok || strings.Contains(hashPart, "/") {
		http.Error(w, fmt.Sprintf("invalid NAR upload %q: want nar/<52 nixbase32>.nar[.xz|.zst|.bz2]", url), http.StatusBadRequest)
		return
	}
	if !known {
		http.Error(w, fmt.Sprintf("NAR upload %q: compression %q not supported (use compression=xz, zstd, bzip2 or none)", url, ext), http.StatusUnsupportedMediaType)
		return
	}
	var want [32]byte
	b, err := nixbase32.DecodeString(hashPart)
	if err != nil || len(b) != 32 {
		http.Error(w, fmt.Sprintf("invalid NAR upload %q: file hash is not 52 nixbase32 characters", url), http.StatusBadRequest)
		return
	}
	copy(want[:], b)

	raw := &hashingReader{r: r.Body, h: sha256.New()}
	p, err := h.ingest(r.Context(), raw, compression)
	if err != nil {
		h.log.Warn("NAR upload refused", "url", url, "err", err)
		code := http.StatusBadRequest
		if le := (*castore.LimitError)(nil); errors.As(err, &le) {
			code = http.StatusRequestEntityTooLarge
		}
		http.Error(w, fmt.Sprintf("NAR upload %s: %v", url, err), code)
		return
	}
	copy(p.fileHash[:], raw.h.Sum(nil))
	p.fileSize = raw.n
	if p.fileHash != want {
		http.Error(w, fmt.Sprintf("NAR upload %s: file hash is sha256:%s, not the one in the URL", url, nixbase32.EncodeToString(p.fileHash[:])), http.StatusBadRequest)
		return
	}
	p.url, p.owner = url, owner
	h.pending.add(p)
	h.log.Debug("NAR uploaded", "url", url, "nar_size", p.narSize, "nar_hash", nixbase32.EncodeToString(p.narSHA256[:]))
	w.WriteHeader(http.StatusOK)
}

func (h *Handler) ingest(ctx context.Context, raw io.Reader, compression string) (*pendingNAR, error) {
	rc, err := decompress.Reader(compression, raw)
	if err != nil {
		return nil, fmt.Errorf("decompress: %w", err)
	}
	defer rc.Close()
	root, size, sum, err := narcastore.Ingest(ctx, rc, h.blobs, h.dirs, narcastore.WithLimits(h.opts.Limits))
	if err != nil {
		return nil, err
	}
	// The file hash covers every byte, and bytes after the NAR would
	// make the file something else than the NAR it claims to be.
	var one [1]byte
	if n, err := io.ReadFull(rc, one[:]); n > 0 {
		return nil, fmt.Errorf("data after the end of the NAR")
	} else if err != io.EOF {
		return nil, fmt.Errorf("decompress: %w", err)
	}
	if _, err := io.Copy(io.Discard, raw); err != nil {
		return nil, fmt.Errorf("read upload: %w", err)
	}
	return &pendingNAR{root: root, narSize: size, narSHA256: sum}, nil
}

func (h *Handler) putNarinfo(w http.ResponseWriter, r *http.Request, digest [storepath.DigestSize]byte) {
	owner, ok := h.uploader(w, r)
	if !ok {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, h.idleBody(w, r.Body), h.opts.MaxNarinfoSize))
	if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
		http.Error(w, fmt.Sprintf("narinfo is more than %d bytes: over the limit of %d (%s)", mbe.Limit, mbe.Limit, LimitNarinfoSize), http.StatusRequestEntityTooLarge)
		return
	}
	if err != nil {
		http.Error(w, fmt.Sprintf("read narinfo: %v", err), http.StatusBadRequest)
		return
	}
	ni, err := narinfo.Parse(bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if ni.StorePath.Digest != digest {
		http.Error(w, fmt.Sprintf("narinfo for %s uploaded as %s.narinfo", ni.StorePath, nixbase32.EncodeToString(digest[:])), http.StatusBadRequest)
		return
	}
	var narHash [32]byte
	copy(narHash[:], ni.NarHash.Digest)
	p, ok := h.pending.lookup(owner, strings.TrimPrefix(ni.URL, "/"), narHash)
	if !ok {
		http.Error(w, fmt.Sprintf("narinfo for %s: its NAR (%s, NarHash %s) was not uploaded by this client", ni.StorePath, ni.URL, ni.NarHash), http.StatusBadRequest)
		return
	}
	if p.narSHA256 != narHash || p.narSize != ni.NarSize {
		http.Error(w, fmt.Sprintf("narinfo for %s: NarHash %s, NarSize %d, but the uploaded NAR %s has sha256:%s, %d bytes",
			ni.StorePath, ni.NarHash, ni.NarSize, p.url, nixbase32.EncodeToString(p.narSHA256[:]), p.narSize), http.StatusBadRequest)
		return
	}
	info, err := pathinfo.FromNarInfo(ni, p.root)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// Nix uploads references first; a narinfo ahead of them (or naming
	// paths nobody uploads) would make a path nobody can fetch whole.
	if err := pathinfo.CheckReferences(r.Context(), h.pathInfo, info); err != nil {
		if errors.Is(err, pathinfo.ErrMissingReference) {
			http.Error(w, fmt.Sprintf("narinfo for %s refused: %v (upload references first)", ni.StorePath, err), http.StatusBadRequest)
		} else {
			h.log.Error("check references", "path", ni.StorePath, "err", err)
			http.Error(w, fmt.Sprintf("narinfo for %s: checking its references failed", ni.StorePath), http.StatusBadGateway)
		}
		return
	}
	if _, err := h.pathInfo.Put(r.Context(), info); err != nil {
		switch {
		case errors.Is(err, pathinfo.ErrConflict):
			// Store paths are immutable; an upload agreeing with the
			// record is merged by Put and does not get here.
			h.log.Warn("narinfo upload contradicts the store", "path", ni.StorePath, "err", err)
			http.Error(w, err.Error(), http.StatusConflict)
		case errors.Is(err, pathinfo.ErrInvalid):
			http.Error(w, err.Error(), http.StatusBadRequest)
		default:
			h.log.Error("put path info", "path", ni.StorePath, "err", err)
			http.Error(w, fmt.Sprintf("store path info for %s failed", ni.StorePath), http.StatusInternalServerError)
		}
		return
	}
	h.recordURLs(r.Context(), ni.StorePath, p.url, strings.TrimPrefix(ni.URL, "/"))
	// One line per path received, so a long nix copy --to shows on the
	// daemon's side how far it got.
	h.log.Info("received upload", "path", ni.StorePath, "nar_size", ni.NarSize)
	w.WriteHeader(http.StatusOK)
}

// recordURLs remembers the URLs Nix will ask for this path's NAR at: the
// one it uploaded to and the one its narinfo names (the same, from Nix).
func (h *Handler) recordURLs(ctx context.Context, path storepath.StorePath, urls ...string) {
	files, ok := castore.As[pathinfo.NARFiles](h.pathInfo)
	if !ok {
		return
	}
	for i, url := range urls {
		if i > 0 && url == urls[0] {
			continue
		}
		_, ext, isNAR := strings.Cut(strings.TrimPrefix(url, "nar/"), ".nar")
		if _, known := decompress.ByExtension[ext]; !known || !isNAR || !strings.HasPrefix(url, "nar/") || strings.HasPrefix(url, narURLPrefix) {
			continue
		}
		if err := files.PutNARFile(ctx, url, path.Digest); err != nil {
			// The path is committed; only a later download by URL fails.
			h.log.Warn("record NAR URL", "path", path, "url", url, "err", err)
		}
	}
}

// getCompressedNAR streams the NAR through a compressor, as the file's
// format (a .nar.zst URL) or as its Content-Encoding; the length is not
// known ahead, so the response is chunked.
func (h *Handler) getCompressedNAR(w http.ResponseWriter, r *http.Request, node *castorev1.Node, compression string, contentEncoding bool) {
	w.Header().Set("Content-Type", "application/x-nix-nar")
	w.Header().Set("Cache-Control", "max-age=31536000, immutable")
	if contentEncoding {
		w.Header().Set("Content-Encoding", compression)
	}
	if r.Method == http.MethodHead {
		return
	}
	var cw io.WriteCloser
	var err error
	if compression == "zstd" {
		cw = newPooledZstd(w)
	} else if cw, err = compress.Writer(compression, w); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if err := narcastore.Render(r.Context(), cw, node, h.blobs, h.dirs); err != nil {
		h.log.Warn("render compressed NAR", "err", err)
		panic(http.ErrAbortHandler)
	}
	if err := cw.Close(); err != nil {
		h.log.Warn("compress NAR", "err", err)
		panic(http.ErrAbortHandler)
	}
}

// errRangeDone stops a render once the requested range is out.
var errRangeDone = errors.New("range complete")

// rangeWriter passes on only bytes [start, end) of what is written.
type rangeWriter struct {
	w          io.Writer
	pos        int64
	start, end int64
}

func (rw *rangeWriter) Write(p []byte) (int, error) {
	n := len(p)
	lo, hi := rw.pos, rw.pos+int64(n)
	rw.pos = hi
	if hi <= rw.start {
		return n, nil
	}
	if lo >= rw.end {
		return 0, errRangeDone
	}
	a, b := max(lo, rw.start)-lo, min(hi, rw.end)-lo
	if _, err := rw.w.Write(p[a:b]); err != nil {
		return 0, err
	}
	if hi >= rw.end {
		return 0, errRangeDone
	}
	return n, nil
}

// ReadFrom takes a file's contents (nar.Writer copies them from a blob
// reader limited to the file's size): the part before the range is
// skipped by seeking the blob reader, not read, so a range deep into a
// large file does not read (and verify) the chunks before it.
func (rw *rangeWriter) ReadFrom(src io.Reader) (int64, error) {
	var n int64
	if lr, ok := src.(*io.LimitedReader); ok && rw.pos < rw.start {
		if sk, ok := lr.R.(io.Seeker); ok {
			skip := min(lr.N, rw.start-rw.pos)
			if _, err := sk.Seek(skip, io.SeekCurrent); err != nil {
				return 0, fmt.Errorf("skip to the range: %w", err)
			}
			lr.N -= skip
			rw.pos += skip
			n = skip
		}
	}
	m, err := io.Copy(writerOnly{rw}, src)
	return n + m, err
}

// getNARRange answers a single "bytes=a-b" range. The NAR is rendered from
// the start and cut; the contents of files before the range are skipped
// (rangeWriter.ReadFrom), but their headers, and small files the NAR
// writer buffers whole, are rendered: a NAR rendered from castore has no
// index to seek into.
func (h *Handler) getNARRange(w http.ResponseWriter, r *http.Request, node *castorev1.Node, narSize uint64, spec string) {
	start, end, ok := parseRange(spec, int64(narSize))
	if !ok {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", narSize))
		http.Error(w, "invalid or unsatisfiable range", http.StatusRequestedRangeNotSatisfiable)
		return
	}
	w.Header().Set("Content-Type", "application/x-nix-nar")
	w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end-1, narSize))
	w.Header().Set("Content-Length", strconv.FormatInt(end-start, 10))
	w.WriteHeader(http.StatusPartialContent)
	rw := &rangeWriter{w: w, start: start, end: end}
	err := narcastore.Render(r.Context(), rw, node, h.blobs, h.dirs)
	if err != nil && !errors.Is(err, errRangeDone) {
		h.log.Warn("render NAR range", "err", err)
		panic(http.ErrAbortHandler)
	}
	if rw.pos < end {
		h.log.Warn("NAR shorter than its narsize", "narsize", narSize, "rendered", rw.pos)
		panic(http.ErrAbortHandler)
	}
}

// parseRange accepts one range, "bytes=a-b", "bytes=a-" or "bytes=-n",
// returning the half-open [start, end).
func parseRange(spec string, size int64) (int64, int64, bool) {
	v, ok := strings.CutPrefix(spec, "bytes=")
	if !ok || strings.Contains(v, ",") {
		return 0, 0, false
	}
	a, b, ok := strings.Cut(v, "-")
	if !ok {
		return 0, 0, false
	}
	if a == "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n <= 0 {
			return 0, 0, false
		}
		return max(size-n, 0), size, size > 0
	}
	start, err := strconv.ParseInt(a, 10, 64)
	if err != nil || start < 0 || start >= size {
		return 0, 0, false
	}
	end := size
	if b != "" {
		e, err := strconv.ParseInt(b, 10, 64)
		if err != nil || e < start {
			return 0, 0, false
		}
		end = min(e+1, size)
	}
	return start, end, true
}
