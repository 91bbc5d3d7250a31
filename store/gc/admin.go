package gc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/internal/grpcstatus"
	"github.com/tvix-go/tvix/nix/storepath"
)

// The admin service lets `tvix store gc` ask the daemon holding a store to
// collect it (the embedded store's files are the daemon's alone). It is
// tvix-go's own, not Tvix's: one server-streaming call, whose request and
// messages are JSON in a BytesValue (progress, then one report), so it
// needs no generated code and old clients ignore fields they do not know.
const (
	adminService = "tvix.gc.v1.GCService"
	collectRPC   = "/" + adminService + "/Collect"
)

// errBadRequest marks a request the client got wrong.
var errBadRequest = errors.New("bad gc request")

// adminErrors: refusals (a live path, a bad request) are the client's to
// fix, everything else the daemon's.
var adminErrors = grpcstatus.Mapping{Invalid: func(err error) bool {
	return errors.Is(err, errBadRequest) || errors.Is(err, ErrAlive)
}}

// wireOptions are Options as the client sends them.
type wireOptions struct {
	RootsFrom    []string `json:"roots_from,omitempty"`
	GCRoots      bool     `json:"gc_roots,omitempty"`
	Delete       []string `json:"delete,omitempty"`
	DryRun       bool     `json:"dry_run,omitempty"`
	MaxFreed     uint64   `json:"max_freed,omitempty"`
	MaxSize      uint64   `json:"max_size,omitempty"`
	GraceNS      int64    `json:"grace_ns,omitempty"`
	CompactBelow float64  `json:"compact_below,omitempty"`
}

// wireMessage is one message of the reply stream.
type wireMessage struct {
	Progress *Progress   `json:"progress,omitempty"`
	Report   *wireReport `json:"report,omitempty"`
}

type wireReport struct {
	DryRun               bool                `json:"dry_run,omitempty"`
	Deleted              []string            `json:"deleted,omitempty"`
	Live                 []string            `json:"live,omitempty"`
	DeletedNARBytes      uint64              `json:"deleted_nar_bytes"`
	Castore              castore.SweepReport `json:"castore"`
	ReachableDirectories int64               `json:"reachable_directories"`
	ReachableBlobs       int64               `json:"reachable_blobs"`
	DurationNS           int64               `json:"duration_ns"`
}

func pathStrings(ps []storepath.StorePath) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

func parsePaths(ss []string) ([]storepath.StorePath, error) {
	out := make([]storepath.StorePath, len(ss))
	for i, s := range ss {
		p, err := storepath.Parse(s)
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

// RegisterAdminServer serves c's collections on srv.
func RegisterAdminServer(srv *grpc.Server, c *Collector) {
	srv.RegisterService(&grpc.ServiceDesc{
		ServiceName: adminService,
		HandlerType: (*any)(nil),
		Streams: []grpc.StreamDesc{{
			StreamName:    "Collect",
			ServerStreams: true,
			Handler: func(_ any, stream grpc.ServerStream) error {
				return adminErrors.ToStatus(serveCollect(stream, c))
			},
		}},
	}, c)
}

func serveCollect(stream grpc.ServerStream, c *Collector) error {
	req := &wrapperspb.BytesValue{}
	if err := stream.RecvMsg(req); err != nil {
		return err
	}
	var wo wireOptions
	if err := json.Unmarshal(req.GetValue(), &wo); err != nil {
		return fmt.Errorf("%w: collect garbage: options: %v", errBadRequest, err)
	}
	del, err := parsePaths(wo.Delete)
	if err != nil {
		return fmt.Errorf("%w: collect garbage: %v", errBadRequest, err)
	}
	send := func(m wireMessage) error {
		b, err := json.Marshal(m)
		if err != nil {
			return err
		}
		return stream.SendMsg(wrapperspb.Bytes(b))
	}
	// Progress goes out at most every 200 ms; a slow client does not
	// slow the collection (a send that would block is skipped).
	var last time.Time
	progress := make(chan Progress, 1)
	sendErr := make(chan error, 1)
	go func() {
		for p := range progress {
			if err := send(wireMessage{Progress: &p}); err != nil {
				sendErr <- err
				for range progress {
				}
				return
			}
		}
		sendErr <- nil
	}()
	rep, err := c.Collect(stream.Context(), Options{
		RootsFrom: wo.RootsFrom, GCRoots: wo.GCRoots, Delete: del, DryRun: wo.DryRun, MaxFreed: wo.MaxFreed,
		MaxSize: wo.MaxSize, Grace: time.Duration(wo.GraceNS), CompactBelow: wo.CompactBelow,
		Progress: func(p Progress) {
			if time.Since(last) < 200*time.Millisecond {
				return
			}
			last = time.Now()
			select {
			case progress <- p:
			default:
			}
		},
	})
	close(progress)
	if serr := <-sendErr; serr != nil && err == nil {
		err = serr
	}
	if err != nil {
		return err
	}
	return send(wireMessage{Report: &wireReport{
		DryRun: rep.DryRun, Deleted: pathStrings(rep.Deleted), Live: pathStrings(rep.Live), DeletedNARBytes: rep.DeletedNARBytes,
		Castore: rep.Castore, ReachableDirectories: rep.ReachableDirectories, ReachableBlobs: rep.ReachableBlobs, DurationNS: int64(rep.Duration),
	}})
}

// CollectRemote asks the daemon behind conn to collect its store, telling
// progress (if set) how it goes.
func CollectRemote(ctx context.Context, conn grpc.ClientConnInterface, opts Options) (*Report, error) {
	wo := wireOptions{RootsFrom: opts.RootsFrom, GCRoots: opts.GCRoots, Delete: pathStrings(opts.Delete), DryRun: opts.DryRun,
		MaxFreed: opts.MaxFreed, MaxSize: opts.MaxSize, GraceNS: int64(opts.Grace), CompactBelow: opts.CompactBelow}
	b, err := json.Marshal(wo)
	if err != nil {
		return nil, err
	}
	stream, err := conn.NewStream(ctx, &grpc.StreamDesc{StreamName: "Collect", ServerStreams: true}, collectRPC)
	if err != nil {
		return nil, fmt.Errorf("collect garbage on the daemon: %w", grpcstatus.FromStatus(err, nil))
	}
	if err := stream.SendMsg(wrapperspb.Bytes(b)); err != nil {
		return nil, fmt.Errorf("collect garbage on the daemon: %w", grpcstatus.FromStatus(err, nil))
	}
	if err := stream.CloseSend(); err != nil {
		return nil, fmt.Errorf("collect garbage on the daemon: %w", grpcstatus.FromStatus(err, nil))
	}
	for {
		msg := &wrapperspb.BytesValue{}
		err := stream.RecvMsg(msg)
		if errors.Is(err, io.EOF) {
			return nil, errors.New("collect garbage on the daemon: it ended without a report")
		}
		if err != nil {
			return nil, fmt.Errorf("collect garbage on the daemon: %w", grpcstatus.FromStatus(err, nil))
		}
		var m wireMessage
		if err := json.Unmarshal(msg.GetValue(), &m); err != nil {
			return nil, fmt.Errorf("collect garbage on the daemon: reply: %w", err)
		}
		if m.Progress != nil && opts.Progress != nil {
			opts.Progress(*m.Progress)
		}
		if r := m.Report; r != nil {
			rep := &Report{DryRun: r.DryRun, DeletedNARBytes: r.DeletedNARBytes, Castore: r.Castore,
				ReachableDirectories: r.ReachableDirectories, ReachableBlobs: r.ReachableBlobs, Duration: time.Duration(r.DurationNS)}
			if rep.Deleted, err = parsePaths(r.Deleted); err != nil {
				return nil, fmt.Errorf("collect garbage on the daemon: reply: %w", err)
			}
			if rep.Live, err = parsePaths(r.Live); err != nil {
				return nil, fmt.Errorf("collect garbage on the daemon: reply: %w", err)
			}
			return rep, nil
		}
	}
}
