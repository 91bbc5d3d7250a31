package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"google.golang.org/grpc"

	"github.com/tvix-go/tvix/build/buildv1"
	"github.com/tvix-go/tvix/internal/grpcstatus"
)

// errInvalid marks a request Validate refused, so it reaches the client as
// InvalidArgument.
var errInvalid = errors.New("invalid build request")

var wire = grpcstatus.Mapping{Invalid: func(err error) bool { return errors.Is(err, errInvalid) }}

// RegisterServer serves b as Tvix's BuildService on s.
func RegisterServer(s *grpc.Server, b Builder) {
	host, _ := os.Hostname()
	buildv1.RegisterBuildServiceServer(s, &server{b: b, host: host})
}

type server struct {
	buildv1.UnimplementedBuildServiceServer
	b    Builder
	host string
}

func (s *server) validate(req *buildv1.BuildRequest) error {
	if err := Validate(req); err != nil {
		return wire.ToStatus(fmt.Errorf("%w: %w", errInvalid, err))
	}
	return nil
}

// DoBuild is Tvix's call: the log is not sent; a failed build is an error.
func (s *server) DoBuild(ctx context.Context, req *buildv1.BuildRequest) (*buildv1.Build, error) {
	if err := s.validate(req); err != nil {
		return nil, err
	}
	res, err := s.b.Build(ctx, req, io.Discard)
	if err != nil {
		return nil, wire.ToStatus(err)
	}
	return res, nil
}

// Run streams the log as the builder writes it; the build's context is
// the stream's, so a client that goes away cancels it.
func (s *server) Run(req *buildv1.BuildRequest, stream buildv1.BuildService_RunServer) error {
	if err := s.validate(req); err != nil {
		return err
	}
	if err := stream.Send(&buildv1.BuildEvent{Event: &buildv1.BuildEvent_Started{Started: &buildv1.BuildStarted{Builder: s.host}}}); err != nil {
		return err
	}
	lw := &logSender{stream: stream}
	start := time.Now()
	res, err := s.b.Build(stream.Context(), req, lw)
	slog.Info("build finished", "outputs", req.GetOutputs(), "took", time.Since(start).Round(time.Millisecond), "err", err)
	if lw.err != nil {
		return lw.err
	}
	var f *Failure
	switch {
	case errors.As(err, &f):
		return stream.Send(&buildv1.BuildEvent{Event: &buildv1.BuildEvent_Failed{Failed: &buildv1.BuildFailed{
			Message: f.Message, ExitCode: int32(f.ExitCode), TimedOut: f.TimedOut}}})
	case err != nil:
		return wire.ToStatus(err)
	}
	return stream.Send(&buildv1.BuildEvent{Event: &buildv1.BuildEvent_Completed{Completed: res}})
}

// logSender sends log bytes as events, in the order written.
type logSender struct {
	stream buildv1.BuildService_RunServer
	err    error
}

// maxLogChunk keeps each event well below gRPC's message limit.
const maxLogChunk = 64 << 10

func (l *logSender) Write(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	for off := 0; off < len(p); off += maxLogChunk {
		chunk := p[off:min(off+maxLogChunk, len(p))]
		if err := l.stream.Send(&buildv1.BuildEvent{Event: &buildv1.BuildEvent_Log{Log: &buildv1.LogOutput{Data: chunk}}}); err != nil {
			l.err = fmt.Errorf("send build log: %w", err)
			return off, l.err
		}
	}
	return len(p), nil
}

// Client is a Builder on another process's BuildService.
type Client struct {
	c buildv1.BuildServiceClient
}

// NewClient builds through conn.
func NewClient(conn grpc.ClientConnInterface) *Client {
	return &Client{c: buildv1.NewBuildServiceClient(conn)}
}

var _ Builder = (*Client)(nil)

// Build runs req remotely, copying its log to log as it arrives.
func (c *Client) Build(ctx context.Context, req *buildv1.BuildRequest, log io.Writer) (*buildv1.Build, error) {
	if log == nil {
		log = io.Discard
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.c.Run(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("remote build: %w", grpcstatus.FromStatus(err, nil))
	}
	for {
		ev, err := stream.Recv()
		if err == io.EOF {
			return nil, errors.New("remote build: the builder ended the stream without a result")
		}
		if err != nil {
			return nil, fmt.Errorf("remote build: %w", grpcstatus.FromStatus(err, nil))
		}
		switch e := ev.GetEvent().(type) {
		case *buildv1.BuildEvent_Log:
			log.Write(e.Log.GetData())
		case *buildv1.BuildEvent_Completed:
			return e.Completed, nil
		case *buildv1.BuildEvent_Failed:
			return nil, &Failure{Message: e.Failed.GetMessage(), ExitCode: int(e.Failed.GetExitCode()), TimedOut: e.Failed.GetTimedOut()}
		}
	}
}
