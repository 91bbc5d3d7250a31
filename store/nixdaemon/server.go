// Package nixdaemon serves Nix's own daemon protocol (the worker protocol
// of nix-daemon, version 1.34 as Nix 2.8 speaks it) over a tvix store, so
// that an unmodified Nix client uses tvix as its store (--store
// unix:///path) and as its remote builder (builders = unix:///path or
// ssh-ng:// with `tvix nix-daemon --stdio` as remote-program).
//
// Store operations go to the PathInfo and castore services: NARs are
// ingested streaming with their hashes checked and rendered from castore
// on the way out. Builds go to a Builder, garbage-collector roots to
// Roots; without them those operations answer with an error naming what
// is missing. Trust follows Nix: trusted clients (by uid or group, from
// the socket's peer credentials) may add unsigned input-addressed paths
// and change settings that matter; the others may not.
package nixdaemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/nix/narinfo"
	"github.com/tvix-go/tvix/nix/workerproto"
	"github.com/tvix-go/tvix/store/narcastore"
	"github.com/tvix-go/tvix/store/pathinfo"
)

// minClientMinor is the oldest protocol served: 1.21 (Nix 2.3). Older
// clients tunnel NARs through STDERR_READ, which is not implemented.
const minClientMinor = 21

// Store is what the daemon serves.
type Store struct {
	Blobs castore.BlobService
	Dirs  castore.DirectoryService
	// PathInfos is the store itself: validity queries never substitute.
	PathInfos pathinfo.Service
	// Substituting, if set, is PathInfos with substituters behind it:
	// EnsurePath, substituting queries and builds of store paths go
	// through it.
	Substituting pathinfo.Service
	// Builder builds derivations; nil refuses builds.
	Builder Builder
	// Roots keeps garbage-collector roots and collects; nil refuses the
	// gc operations.
	Roots Roots
	// TrustedKeys are trusted-public-keys: an input-addressed path from a
	// client with a signature by one of them may be added.
	TrustedKeys []narinfo.PublicKey
	// RequireSigs is Nix's require-sigs: whether paths clients add need
	// a reason to be trusted (see trustedInfo).
	RequireSigs bool
	// SigningKey, if set, signs the path infos clients are sent, as Nix's
	// secret-key-files signs what it builds.
	SigningKey *narinfo.SecretKey
	// Limits bound the trees and NARs clients add (the zero value: none).
	Limits narcastore.Limits
}

// Server serves connections.
type Server struct {
	Store Store
	// Trusted says whether a peer is trusted (Nix's trusted-users); nil
	// trusts only root.
	Trusted func(Peer) bool
	// Allowed says whether a peer may connect at all (Nix's
	// allowed-users); nil allows everyone.
	Allowed func(Peer) bool
	// NixVersion is sent to clients of protocol 1.33 and later.
	NixVersion string
	Log        *slog.Logger

	// next activity id; ids are unique per daemon, as Nix makes them per
	// process.
	mu       sync.Mutex
	activity uint64
}

// Peer is who is on the other end of a connection.
type Peer struct {
	// UID and GID from the socket's credentials; -1 when unknown.
	UID, GID int
	PID      int
	// Stdio is set for `nix-daemon --stdio`, whose caller already has a
	// shell as the user the daemon runs as.
	Stdio bool
}

func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.Default()
	}
	return s.Log
}

func (s *Server) nextActivity() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.activity++
	// Nix's ids are (pid << 32) + n; a high prefix keeps ours apart from
	// the client's own.
	return 0x7476_0000_0000_0000 + s.activity
}

// Serve accepts connections on lis until ctx ends, each served in its own
// goroutine.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	go func() {
		<-ctx.Done()
		lis.Close()
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := lis.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return fmt.Errorf("nix daemon: accept: %w", err)
		}
		peer := peerOf(c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			cctx, cancel := context.WithCancel(ctx)
			defer cancel()
			stop := watchHangup(c, cancel)
			defer stop()
			if err := s.ServeConn(cctx, c, c, peer); err != nil && !errors.Is(err, io.EOF) {
				s.log().Warn("nix daemon connection ended", "uid", peer.UID, "pid", peer.PID, "err", err)
			}
		}()
	}
}

// ServeConn speaks the protocol on one connection until the client hangs
// up.
func (s *Server) ServeConn(ctx context.Context, r io.Reader, w io.Writer, peer Peer) error {
	c := &conn{
		srv: s, ctx: ctx, peer: peer,
		r: workerproto.NewReader(r), w: workerproto.NewWriter(w),
		log:      s.log().With("uid", peer.UID, "pid", peer.PID),
		settings: defaultSettings(),
	}
	defer c.releaseRoots()
	if s.Allowed != nil && !s.Allowed(peer) && !peer.Stdio {
		return fmt.Errorf("user %d is not in allowed-users", peer.UID)
	}
	c.trusted = peer.Stdio || (s.Trusted == nil && peer.UID == 0) || (s.Trusted != nil && s.Trusted(peer))
	if err := c.handshake(); err != nil {
		return err
	}
	for {
		c.r.ResetBudget(workerproto.DefaultBudget)
		op := workerproto.Op(c.r.Uint64("operation"))
		if err := c.r.Err(); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return io.EOF // the client is done
			}
			return err
		}
		c.ops++
		if err := c.perform(op); err != nil {
			return fmt.Errorf("%v: %w", op, err)
		}
		if err := c.w.Flush(); err != nil {
			return err
		}
	}
}

// conn is one client connection.
type conn struct {
	srv     *Server
	ctx     context.Context
	peer    Peer
	trusted bool
	version uint64
	r       *workerproto.Reader
	log     *slog.Logger
	ops     int
	lastOp  workerproto.Op

	// wmu orders the stderr channel and replies: build logs arrive from
	// other goroutines.
	wmu      sync.Mutex
	w        *workerproto.Writer
	working  bool
	settings settings

	rootsMu sync.Mutex
	roots   RootSession
}

func (c *conn) minor() uint64 { return workerproto.Minor(c.version) }

func (c *conn) handshake() error {
	if m := c.r.Uint64("magic"); c.r.Err() == nil && m != workerproto.MagicClient {
		return fmt.Errorf("handshake: magic %#x is not a Nix client's: %w", m, workerproto.ErrProtocol)
	}
	if err := c.r.Err(); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	c.w.Uint64(workerproto.MagicServer)
	c.w.Uint64(workerproto.Version)
	if err := c.w.Flush(); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	c.version = c.r.Uint64("client version")
	if err := c.r.Err(); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	if workerproto.Major(c.version) != workerproto.Major(workerproto.Version) || c.minor() < minClientMinor {
		return fmt.Errorf("handshake: client protocol %d.%d is not supported (need 1.%d to 1.%d)",
			c.version>>8, c.minor(), minClientMinor, workerproto.Minor(workerproto.Version))
	}
	if c.minor() >= 14 && c.r.Uint64("cpu affinity flag") != 0 {
		c.r.Uint64("cpu affinity")
	}
	if c.minor() >= 11 {
		c.r.Uint64("reserve space")
	}
	if err := c.r.Err(); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	if c.minor() >= 33 {
		c.w.String(c.srv.NixVersion)
	}
	c.start()
	c.stop(nil)
	return c.w.Flush()
}

// start opens the stderr channel: from now until stop, log lines and
// activities may be sent.
func (c *conn) start() {
	c.wmu.Lock()
	c.working = true
	c.wmu.Unlock()
}

// stop closes the stderr channel with the last message or the error.
func (c *conn) stop(err error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.working = false
	if err == nil {
		c.w.Uint64(workerproto.StderrLast)
		return
	}
	if c.minor() >= 26 {
		c.w.Error(err.Error())
	} else {
		c.w.Uint64(workerproto.StderrError)
		c.w.String(err.Error())
		c.w.Uint64(1)
	}
}

// stderr sends one message on the stderr channel if it is open.
func (c *conn) stderr(write func(w *workerproto.Writer)) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if !c.working {
		return
	}
	write(c.w)
	c.w.Flush()
}

// logLine sends a log line at a level the client asked to see.
func (c *conn) logLine(lvl uint64, msg string) {
	if lvl > c.settings.verbosity {
		return
	}
	c.stderr(func(w *workerproto.Writer) {
		w.Uint64(workerproto.StderrNext)
		w.String(msg + "\n")
	})
}

// activity is one of the client's progress entries.
type activity struct {
	c  *conn
	id uint64
}

func (c *conn) startActivity(lvl, typ uint64, text string, fields []workerproto.Field) *activity {
	a := &activity{c: c, id: c.srv.nextActivity()}
	if c.minor() < 20 {
		return a
	}
	c.stderr(func(w *workerproto.Writer) {
		w.Uint64(workerproto.StderrStartActivity)
		w.Uint64(a.id)
		w.Uint64(lvl)
		w.Uint64(typ)
		w.String(text)
		w.Fields(fields)
		w.Uint64(0) // parent
	})
	return a
}

func (a *activity) result(typ uint64, fields []workerproto.Field) {
	a.c.stderr(func(w *workerproto.Writer) {
		w.Uint64(workerproto.StderrResult)
		w.Uint64(a.id)
		w.Uint64(typ)
		w.Fields(fields)
	})
}

func (a *activity) stop() {
	a.c.stderr(func(w *workerproto.Writer) {
		w.Uint64(workerproto.StderrStopActivity)
		w.Uint64(a.id)
	})
}

// errFatal marks errors after which the connection cannot go on: the
// request was not read whole, so the stream is out of step.
type errFatal struct{ err error }

func (e errFatal) Error() string { return e.err.Error() }
func (e errFatal) Unwrap() error { return e.err }

// perform runs one operation. An error reading its arguments is sent to
// the client and ends the connection, as in Nix; an error while working is
// sent and the connection goes on.
func (c *conn) perform(op workerproto.Op) error {
	h, ok := handlers[op]
	if !ok {
		err := fmt.Errorf("invalid operation %d", uint64(op))
		if op.Known() {
			err = fmt.Errorf("operation %s is not supported by the tvix daemon", op)
		}
		c.stop(err)
		c.w.Flush()
		return err
	}
	c.lastOp = op
	err := h(c)
	if err == nil {
		return nil
	}
	var abort errAbort
	if errors.As(err, &abort) {
		c.log.Warn("nix daemon connection aborted", "op", op.String(), "err", err)
		return err
	}
	var fatal errFatal
	if errors.As(err, &fatal) || !c.working {
		c.log.Warn("nix daemon request failed", "op", op.String(), "err", err)
		c.stop(err)
		c.w.Flush()
		return err
	}
	c.log.Info("nix daemon operation failed", "op", op.String(), "err", err)
	c.stop(err)
	return nil
}

// args checks that a request's arguments were read whole.
func (c *conn) args() error {
	if err := c.r.Err(); err != nil {
		return errFatal{err}
	}
	return nil
}

// handlers maps operations to their implementations, each of which reads
// its arguments, calls start, works, calls stop and writes its reply.
var handlers map[workerproto.Op]func(*conn) error

func init() {
	handlers = map[workerproto.Op]func(*conn) error{
		workerproto.OpIsValidPath:                 (*conn).isValidPath,
		workerproto.OpQueryValidPaths:             (*conn).queryValidPaths,
		workerproto.OpHasSubstitutes:              (*conn).hasSubstitutes,
		workerproto.OpQuerySubstitutablePaths:     (*conn).querySubstitutablePaths,
		workerproto.OpQuerySubstitutablePathInfos: (*conn).querySubstitutablePathInfos,
		workerproto.OpQueryPathHash:               (*conn).queryPathString,
		workerproto.OpQueryReferences:             (*conn).queryPathSet,
		workerproto.OpQueryReferrers:              (*conn).queryPathSet,
		workerproto.OpQueryValidDerivers:          (*conn).queryPathSet,
		workerproto.OpQueryDerivationOutputs:      (*conn).queryPathSet,
		workerproto.OpQueryDerivationOutputNames:  (*conn).queryDerivationOutputNames,
		workerproto.OpQueryDerivationOutputMap:    (*conn).queryDerivationOutputMap,
		workerproto.OpQueryDeriver:                (*conn).queryPathString,
		workerproto.OpQueryPathFromHashPart:       (*conn).queryPathFromHashPart,
		workerproto.OpQueryPathInfo:               (*conn).queryPathInfo,
		workerproto.OpQueryAllValidPaths:          (*conn).queryAllValidPaths,
		workerproto.OpQueryMissing:                (*conn).queryMissing,
		workerproto.OpQueryRealisation:            (*conn).queryRealisation,
		workerproto.OpNarFromPath:                 (*conn).narFromPath,
		workerproto.OpAddToStoreNar:               (*conn).addToStoreNar,
		workerproto.OpAddMultipleToStore:          (*conn).addMultipleToStore,
		workerproto.OpAddToStore:                  (*conn).addToStore,
		workerproto.OpAddTextToStore:              (*conn).addTextToStore,
		workerproto.OpAddSignatures:               (*conn).addSignatures,
		workerproto.OpEnsurePath:                  (*conn).ensurePath,
		workerproto.OpAddTempRoot:                 (*conn).addTempRoot,
		workerproto.OpAddIndirectRoot:             (*conn).addIndirectRoot,
		workerproto.OpSyncWithGC:                  (*conn).syncWithGC,
		workerproto.OpFindRoots:                   (*conn).findRoots,
		workerproto.OpCollectGarbage:              (*conn).collectGarbage,
		workerproto.OpOptimiseStore:               (*conn).optimiseStore,
		workerproto.OpVerifyStore:                 (*conn).verifyStore,
		workerproto.OpSetOptions:                  (*conn).setOptions,
		workerproto.OpBuildPaths:                  (*conn).buildPaths,
		workerproto.OpBuildPathsWithResults:       (*conn).buildPathsWithResults,
		workerproto.OpBuildDerivation:             (*conn).buildDerivation,
		workerproto.OpAddBuildLog:                 (*conn).addBuildLog,
		workerproto.OpRegisterDrvOutput:           (*conn).registerDrvOutput,
		workerproto.OpQuerySubstitutablePathInfo:  (*conn).querySubstitutablePathInfo,
	}
}
