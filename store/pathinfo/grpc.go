package pathinfo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/internal/grpcstatus"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/storev1"
)

// RegisterServer serves svc as tvix.store.v1.PathInfoService; calc answers
// CalculateNAR (nil: Unimplemented).
func RegisterServer(s *grpc.Server, svc Service, calc NARCalculator) {
	storev1.RegisterPathInfoServiceServer(s, &server{svc: svc, calc: calc})
}

type server struct {
	storev1.UnimplementedPathInfoServiceServer
	svc  Service
	calc NARCalculator
}

// wire maps our errors onto the codes Tvix clients expect; a path whose
// info refers to a missing castore node is as not-found as a missing path.
var wire = grpcstatus.Mapping{
	NotFound: []error{ErrNotFound, castore.ErrNotFound},
	Invalid:  func(err error) bool { return errors.Is(err, ErrInvalid) },
}

func toStatus(err error) error { return wire.ToStatus(err) }

// fromWire lets errors.Is see ErrNotFound and the context errors in what
// the server or the transport answered.
func fromWire(err error) error { return grpcstatus.FromStatus(err, ErrNotFound) }

func (s *server) Get(ctx context.Context, req *storev1.GetPathInfoRequest) (*storev1.PathInfo, error) {
	var d [storepath.DigestSize]byte
	if len(req.GetByOutputHash()) != len(d) {
		return nil, status.Errorf(codes.InvalidArgument, "by_output_hash has %d bytes, want %d", len(req.GetByOutputHash()), len(d))
	}
	copy(d[:], req.GetByOutputHash())
	info, err := s.svc.Get(ctx, d)
	if err != nil {
		return nil, toStatus(err)
	}
	return info, nil
}

func (s *server) Put(ctx context.Context, info *storev1.PathInfo) (*storev1.PathInfo, error) {
	sp, err := Validate(info)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	// A put agreeing with the record only adds signatures; what was
	// recorded was checked when it was.
	old, err := s.svc.Get(ctx, sp.Digest)
	switch {
	case errors.Is(err, ErrNotFound):
		if err := s.checkNew(ctx, sp, info); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, toStatus(err)
	default:
		if _, err := Merge(old, info); err != nil {
			return nil, status.Error(codes.AlreadyExists, err.Error())
		}
	}
	out, err := s.svc.Put(ctx, info)
	if errors.Is(err, ErrConflict) {
		// Its own code, so the client can tell "you may not" from "it failed".
		return nil, status.Error(codes.AlreadyExists, err.Error())
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return out, nil
}

// checkNew checks what a client may not just claim, as Tvix does on the
// way in: the references are in the store, the root's contents are, and
// the NAR they render to has the NarHash and NarSize given.
func (s *server) checkNew(ctx context.Context, sp storepath.StorePath, info *storev1.PathInfo) error {
	if err := CheckReferences(ctx, s.svc, info); err != nil {
		if errors.Is(err, ErrMissingReference) {
			return status.Error(codes.FailedPrecondition, err.Error())
		}
		return toStatus(err)
	}
	if s.calc == nil {
		return nil
	}
	size, sum, err := s.calc.CalculateNAR(ctx, castore.RenameNode(info.GetNode(), nil))
	if errors.Is(err, castore.ErrNotFound) {
		return status.Errorf(codes.FailedPrecondition, "%s: contents of the root node not in the store (upload blobs and directories first): %v", sp, err)
	}
	if err != nil {
		return toStatus(fmt.Errorf("%s: render NAR: %w", sp, err))
	}
	ni := info.GetNarinfo()
	if size != ni.GetNarSize() || !bytes.Equal(sum[:], ni.GetNarSha256()) {
		return status.Errorf(codes.InvalidArgument, "%s: NarHash sha256:%x, NarSize %d given, but the root node renders to sha256:%x, %d bytes",
			sp, ni.GetNarSha256(), ni.GetNarSize(), sum, size)
	}
	return nil
}

func (s *server) CalculateNAR(ctx context.Context, node *castorev1.Node) (*storev1.CalculateNARResponse, error) {
	if s.calc == nil {
		return nil, status.Error(codes.Unimplemented, "CalculateNAR not available")
	}
	if err := castore.ValidateNode(node); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	size, sum, err := s.calc.CalculateNAR(ctx, node)
	if err != nil {
		return nil, toStatus(err)
	}
	return &storev1.CalculateNARResponse{NarSize: size, NarSha256: sum[:]}, nil
}

func (s *server) List(_ *storev1.ListPathInfoRequest, stream storev1.PathInfoService_ListServer) error {
	for info, err := range s.svc.List(stream.Context()) {
		if err != nil {
			return toStatus(err)
		}
		if err := stream.Send(info); err != nil {
			return err
		}
	}
	return nil
}

// Client is a Service (and NARCalculator) backed by a remote daemon.
type Client struct {
	c    storev1.PathInfoServiceClient
	conn io.Closer
}

func NewClient(conn grpc.ClientConnInterface, closer io.Closer) *Client {
	return &Client{c: storev1.NewPathInfoServiceClient(conn), conn: closer}
}

func (c *Client) Get(ctx context.Context, digest [storepath.DigestSize]byte) (*storev1.PathInfo, error) {
	info, err := c.c.Get(ctx, &storev1.GetPathInfoRequest{ByWhat: &storev1.GetPathInfoRequest_ByOutputHash{ByOutputHash: digest[:]}})
	if err != nil {
		return nil, fmt.Errorf("get path info %x: %w", digest, fromWire(err))
	}
	sp, err := Validate(info)
	if err != nil {
		return nil, fmt.Errorf("get path info %x: server sent: %w", digest, err)
	}
	if sp.Digest != digest {
		return nil, fmt.Errorf("get path info %x: server sent the info of %s", digest, sp)
	}
	return info, nil
}

func (c *Client) Put(ctx context.Context, info *storev1.PathInfo) (*storev1.PathInfo, error) {
	out, err := c.c.Put(ctx, info)
	if status.Code(err) == codes.AlreadyExists {
		return nil, fmt.Errorf("put path info: %w", remoteConflict(status.Convert(err).Message()))
	}
	if err != nil {
		return nil, fmt.Errorf("put path info: %w", fromWire(err))
	}
	return out, nil
}

func (c *Client) CalculateNAR(ctx context.Context, node *castorev1.Node) (uint64, [32]byte, error) {
	var sum [32]byte
	resp, err := c.c.CalculateNAR(ctx, node)
	if err != nil {
		// What CalculateNAR can miss is a castore node, not a path.
		return 0, sum, fmt.Errorf("calculate NAR: %w", grpcstatus.FromStatus(err, castore.ErrNotFound))
	}
	if len(resp.GetNarSha256()) != 32 {
		return 0, sum, fmt.Errorf("calculate NAR: server sent a %d-byte sha256", len(resp.GetNarSha256()))
	}
	copy(sum[:], resp.GetNarSha256())
	return resp.GetNarSize(), sum, nil
}

func (c *Client) List(ctx context.Context) iter.Seq2[*storev1.PathInfo, error] {
	return func(yield func(*storev1.PathInfo, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := c.c.List(ctx, &storev1.ListPathInfoRequest{})
		if err != nil {
			yield(nil, fmt.Errorf("list path infos: %w", fromWire(err)))
			return
		}
		for {
			info, err := stream.Recv()
			if err == io.EOF {
				return
			}
			if err != nil {
				yield(nil, fmt.Errorf("list path infos: %w", fromWire(err)))
				return
			}
			if !yield(info, nil) {
				return
			}
		}
	}
}

func (c *Client) Close() error {
	if c.conn != nil {
		return c.conn.Close()
	}
	return nil
}

// remoteConflict is the server's ErrConflict, with its message (which
// names the path and what differs).
type remoteConflict string

func (e remoteConflict) Error() string        { return string(e) }
func (e remoteConflict) Is(target error) bool { return target == ErrConflict }
