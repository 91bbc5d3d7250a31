// Package castoregrpc serves castore services over gRPC in the shape of
// Tvix's rpc_blobstore.proto and rpc_directory.proto, and provides clients
// for them, so tvix-go and Tvix processes can use each other's stores.
package castoregrpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/internal/grpcstatus"
)

// readChunkSize bounds the messages a Read stream sends.
const readChunkSize = 1 << 20

// ServerOption configures Register.
type ServerOption func(*directoryServer)

// WithLimits makes directory Put refuse a closure over l (InvalidArgument,
// the message naming the limit), storing none of it.
func WithLimits(l castore.Limits) ServerOption {
	return func(s *directoryServer) { s.limits = l }
}

// Register adds the blob and directory services to s.
func Register(s *grpc.Server, blobs castore.BlobService, dirs castore.DirectoryService, opts ...ServerOption) {
	ds := &directoryServer{dirs: dirs}
	for _, o := range opts {
		o(ds)
	}
	castorev1.RegisterBlobServiceServer(s, &blobServer{blobs: blobs})
	castorev1.RegisterDirectoryServiceServer(s, ds)
}

// wire maps our errors onto the codes Tvix clients expect.
var wire = grpcstatus.Mapping{
	NotFound: []error{castore.ErrNotFound},
	Invalid: func(err error) bool {
		var ve *castore.ValidationError
		var le *castore.LimitError
		return errors.As(err, &ve) || errors.As(err, &le)
	},
}

func toStatus(err error) error { return wire.ToStatus(err) }

func digestArg(b []byte) (castore.Digest, error) {
	d, err := castore.DigestFromBytes(b)
	if err != nil {
		return d, status.Error(codes.InvalidArgument, err.Error())
	}
	return d, nil
}

type blobServer struct {
	castorev1.UnimplementedBlobServiceServer
	blobs castore.BlobService
}

func (s *blobServer) Stat(ctx context.Context, req *castorev1.StatBlobRequest) (*castorev1.StatBlobResponse, error) {
	d, err := digestArg(req.GetDigest())
	if err != nil {
		return nil, err
	}
	chunks, err := s.blobs.Chunks(ctx, d)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &castorev1.StatBlobResponse{}
	if req.GetSendChunks() {
		for _, c := range chunks {
			resp.Chunks = append(resp.Chunks, &castorev1.StatBlobResponse_ChunkMeta{Digest: c.Digest.Bytes(), Size: c.Size})
		}
	}
	return resp, nil
}

func (s *blobServer) Read(req *castorev1.ReadBlobRequest, stream castorev1.BlobService_ReadServer) error {
	d, err := digestArg(req.GetDigest())
	if err != nil {
		return err
	}
	r, err := s.blobs.Open(stream.Context(), d)
	if err != nil {
		return toStatus(err)
	}
	defer r.Close()
	buf := make([]byte, readChunkSize)
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			if serr := stream.Send(&castorev1.BlobChunk{Data: buf[:n]}); serr != nil {
				return serr
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			slog.Error("read blob", "digest", d, "err", err)
			return toStatus(fmt.Errorf("read blob %s: %w", d, err))
		}
	}
}

func (s *blobServer) Put(stream castorev1.BlobService_PutServer) error {
	w, err := s.blobs.Put(stream.Context())
	if err != nil {
		return toStatus(err)
	}
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			w.Abort()
			return err
		}
		if _, err := w.Write(msg.GetData()); err != nil {
			w.Abort()
			return toStatus(err)
		}
	}
	d, err := w.Close()
	if err != nil {
		return toStatus(err)
	}
	return stream.SendAndClose(&castorev1.PutBlobResponse{Digest: d.Bytes()})
}

type directoryServer struct {
	castorev1.UnimplementedDirectoryServiceServer
	dirs   castore.DirectoryService
	limits castore.Limits
}

func (s *directoryServer) Get(req *castorev1.GetDirectoryRequest, stream castorev1.DirectoryService_GetServer) error {
	d, err := digestArg(req.GetDigest())
	if err != nil {
		return err
	}
	if !req.GetRecursive() {
		dir, err := s.dirs.Get(stream.Context(), d)
		if err != nil {
			return toStatus(err)
		}
		return stream.Send(dir)
	}
	for dir, err := range s.dirs.GetRecursive(stream.Context(), d) {
		if err != nil {
			return toStatus(err)
		}
		if err := stream.Send(dir); err != nil {
			return err
		}
	}
	return nil
}

func (s *directoryServer) Put(stream castorev1.DirectoryService_PutServer) error {
	p := castore.LimitPutter(s.dirs.PutMultiple(stream.Context()), s.limits)
	for {
		dir, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if err := p.Put(dir); err != nil {
			// Refuse at once; nothing of this stream is stored.
			return toStatus(err)
		}
	}
	root, err := p.Close()
	if err != nil {
		return toStatus(err)
	}
	return stream.SendAndClose(&castorev1.PutDirectoryResponse{RootDigest: root.Bytes()})
}
