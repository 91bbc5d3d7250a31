package build

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/tvix-go/tvix/build/buildv1"
)

// fakeBuilder writes a log line and then does what the first command
// argument says.
type fakeBuilder struct{ cancelled chan struct{} }

func (f *fakeBuilder) Build(ctx context.Context, req *buildv1.BuildRequest, log io.Writer) (*buildv1.Build, error) {
	io.WriteString(log, "building "+req.GetOutputs()[0]+"\n")
	switch req.GetCommandArgs()[0] {
	case "fail":
		return nil, &Failure{Message: "builder failed with exit code 2", ExitCode: 2}
	case "hang":
		<-ctx.Done()
		close(f.cancelled)
		return nil, ctx.Err()
	}
	return &buildv1.Build{BuildRequest: req}, nil
}

func serveFake(t *testing.T) (*Client, *fakeBuilder, *grpc.ClientConn) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "b.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	fb := &fakeBuilder{cancelled: make(chan struct{})}
	srv := grpc.NewServer()
	RegisterServer(srv, fb)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return NewClient(conn), fb, conn
}

func TestBuildServiceOverTheWire(t *testing.T) {
	c, fb, conn := serveFake(t)
	ctx := context.Background()

	var log bytes.Buffer
	res, err := c.Build(ctx, goodRequest(), &log)
	if err != nil || res.GetBuildRequest().GetOutputs()[0] != out || !strings.Contains(log.String(), "building "+out) {
		t.Fatalf("build: %v %v, log %q", res, err, log.String())
	}
	// Tvix's unary call answers too.
	if _, err := buildv1.NewBuildServiceClient(conn).DoBuild(ctx, goodRequest()); err != nil {
		t.Fatalf("DoBuild: %v", err)
	}

	req := goodRequest()
	req.CommandArgs = []string{"fail"}
	var f *Failure
	if _, err := c.Build(ctx, req, nil); !errors.As(err, &f) || f.ExitCode != 2 {
		t.Fatalf("failing build: %v", err)
	}

	bad := goodRequest()
	bad.Outputs = []string{"etc/passwd"}
	_, err = buildv1.NewBuildServiceClient(conn).DoBuild(ctx, bad)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "not directly below inputs_dir") {
		t.Fatalf("bad request: %v", err)
	}

	// A client that goes away cancels the build.
	hang := goodRequest()
	hang.CommandArgs = []string{"hang"}
	cctx, cancel := context.WithCancel(ctx)
	go func() { time.Sleep(200 * time.Millisecond); cancel() }()
	if _, err := c.Build(cctx, hang, nil); err == nil {
		t.Fatal("cancelled build succeeded")
	}
	select {
	case <-fb.cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the server's build was not cancelled")
	}
}

// A pool never runs more builds than its builders' slots, and refuses a
// system none of them serves.
func TestPoolSlots(t *testing.T) {
	var mu sync.Mutex
	running, peak := 0, 0
	b := builderFunc(func(ctx context.Context) {
		mu.Lock()
		running++
		peak = max(peak, running)
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		running--
		mu.Unlock()
	})
	p := NewPool(&Remote{Name: "a", Builder: b, Slots: 2, System: "x86_64-linux"}, &Remote{Name: "b", Builder: b, Slots: 1})
	req := goodRequest()
	req.Constraints = &buildv1.BuildRequest_BuildConstraints{System: "x86_64-linux"}
	var wg sync.WaitGroup
	for i := 0; i < 12; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := p.Build(context.Background(), req, nil); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if peak > 3 || peak < 2 {
		t.Fatalf("%d builds ran at once on 3 slots", peak)
	}
	other := goodRequest()
	other.Constraints = &buildv1.BuildRequest_BuildConstraints{System: "aarch64-linux"}
	if _, err := NewPool(&Remote{Name: "a", Builder: b, System: "x86_64-linux"}).Build(context.Background(), other, nil); !errors.Is(err, errNoBuilder) {
		t.Fatalf("a system no builder serves: %v", err)
	}
}

type builderFunc func(ctx context.Context)

func (f builderFunc) Build(ctx context.Context, req *buildv1.BuildRequest, log io.Writer) (*buildv1.Build, error) {
	f(ctx)
	return &buildv1.Build{}, nil
}
