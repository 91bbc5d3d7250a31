package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tvix-go/tvix/castore/blobstore"
	"github.com/tvix-go/tvix/castore/dirstore"
	"github.com/tvix-go/tvix/store/narbridge"
	"github.com/tvix-go/tvix/store/pathinfo"
)

func TestServeHTTP(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	ctx, cancel := context.WithCancel(context.Background())
	h := narbridge.New(blobstore.NewMemory(), dirstore.NewMemory(), pathinfo.NewMemory(), narbridge.Options{Priority: 7})
	run, err := serveHTTP(ctx, addr, h)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- run() }()
	resp, err := http.Get("http://" + addr + "/nix-cache-info")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "Priority: 7\n") {
		t.Fatalf("nix-cache-info: %q", b)
	}
	if _, err := serveHTTP(ctx, addr, h); err == nil {
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
