package daemon

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/store/registry"
)

var memoryStore = registry.Addrs{Blob: "memory://", Directory: "memory://", PathInfo: "memory://"}

// The binary cache answers on its port, a second daemon on the same port
// fails at Start, and cancelling the context stops the daemon cleanly.
func TestServeHTTP(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d, err := Start(ctx, Config{Store: memoryStore, HTTP: HTTPConfig{Listen: "127.0.0.1:0", Priority: 7}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Wait() }()
	addr := d.Addrs("http")[0].String()
	resp, err := http.Get("http://" + addr + "/nix-cache-info")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "Priority: 7\n") {
		t.Fatalf("nix-cache-info: %q", b)
	}
	if d2, err := Start(ctx, Config{Store: memoryStore, HTTP: HTTPConfig{Listen: addr}}); err == nil {
		d2.Stop()
		d2.Wait()
		t.Fatal("second listener on a taken port started")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("server did not stop")
	}
}

func TestNothingToServe(t *testing.T) {
	if _, err := Start(context.Background(), Config{Store: memoryStore}); !errors.Is(err, ErrNothingToServe) {
		t.Fatalf("Start without servers: %v, want ErrNothingToServe", err)
	}
}

// A second daemon whose store is the first one over gRPC (one connection
// for all three services) reads what was written through it, and a bad
// store address fails Start with the address named.
func TestGRPCStoreOfAnotherDaemon(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sock := filepath.Join(t.TempDir(), "tvix.sock")
	upstream, err := Start(ctx, Config{Store: memoryStore, GRPC: []string{"unix://" + sock}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { upstream.Stop(); upstream.Wait() }()
	remote := "grpc+unix://" + sock
	s, err := registry.Default().Open(ctx, registry.Addrs{Blob: remote, Directory: remote, PathInfo: remote}, registry.Substitution{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w, err := s.Blobs.Put(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("through the daemon"))
	dg, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	r, err := upstream.Services.Blobs.Open(ctx, dg)
	if err != nil {
		t.Fatalf("the daemon's own store lacks the blob: %v", err)
	}
	got, _ := io.ReadAll(r)
	r.Close()
	if !bytes.Equal(got, []byte("through the daemon")) {
		t.Fatalf("read back %q", got)
	}
	if castore.InProcess(s.Blobs) || castore.InProcess(s.PathInfos) {
		t.Fatal("gRPC services claim to be in this process")
	}
	if !castore.InProcess(upstream.Services.Blobs) {
		t.Fatal("memory blob service says it is remote")
	}

	_, err = Start(ctx, Config{Store: registry.Addrs{Blob: "nope://x", Directory: "memory://", PathInfo: "memory://"}, GRPC: []string{"unix://" + sock + "2"}})
	if err == nil || !strings.Contains(err.Error(), `"nope://x"`) || !strings.Contains(err.Error(), "unknown scheme") {
		t.Fatalf("bad blob address: %v", err)
	}
}
