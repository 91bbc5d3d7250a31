package nixcache

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tvix-go/tvix/nix/narinfo"
	"github.com/tvix-go/tvix/store/internal/stall"
	"github.com/tvix-go/tvix/store/pathinfo"
)

// An upstream that stops sending a NAR mid-body fails the fetch once
// BodyIdleTimeout passes without a byte, instead of hanging; and a caller
// waiting on someone else's stuck fetch gives up when its context ends.
func TestStalledUpstream(t *testing.T) {
	defer func(d time.Duration) { BodyIdleTimeout = d }(BodyIdleTimeout)
	BodyIdleTimeout = 300 * time.Millisecond
	sk, pk, _ := narinfo.GenerateKey("cache-1", nil)
	dir := t.TempDir()
	e := writeCache(t, dir, sk, "stalled")[0]
	file, err := os.ReadFile(filepath.Join(dir, e.ni.URL))
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	files := http.FileServer(http.Dir(dir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/nar/") {
			files.ServeHTTP(w, r)
			return
		}
		w.Write(file[:len(file)/2])
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	// Before srv.Close, which waits for the handlers.
	defer close(release)
	s, _, _ := openURL(t, "nix+"+srv.URL+"?trusted-public-keys="+url.QueryEscape(pk.String()))

	start := time.Now()
	_, err = s.Get(context.Background(), e.path.Digest)
	if !errors.Is(err, stall.ErrStalled) {
		t.Fatalf("fetch from a stalled upstream: %v, want ErrStalled", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("the stalled fetch took %v", d)
	}

	// A fetch that is stuck (the idle timeout long) and a second caller
	// with a deadline: it returns at its deadline.
	BodyIdleTimeout = time.Hour
	stuck, _, _ := openURL(t, "nix+"+srv.URL+"?trusted-public-keys="+url.QueryEscape(pk.String()))
	c := &Composite{Local: pathinfo.NewMemory(), Substituters: []pathinfo.Service{stuck}}
	go c.Get(context.Background(), e.path.Digest)
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := c.Get(ctx, e.path.Digest); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("waiter on a stuck fetch: %v, want its deadline", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a waiter on a stuck fetch did not give up at its deadline")
	}
}
