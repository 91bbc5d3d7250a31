package nixcache

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/tvix-go/tvix/nix/narinfo"
)

// TestTransfersCountWhileFetching: Transfers sees every NAR byte a fetch
// unpacks, and forgets each path once it is done.
func TestTransfersCountWhileFetching(t *testing.T) {
	sk, pk, _ := narinfo.GenerateKey("cache-1", nil)
	dir := t.TempDir()
	big := strings.Repeat("large contents ", 50000)
	entries := writeCache(t, dir, sk, "small", big)
	s, _, _ := openURL(t, "nix+file://"+dir+"?trusted-public-keys="+url.QueryEscape(pk.String()))
	var tr Transfers
	ctx := WithTransfers(context.Background(), &tr)
	var want int64
	for _, e := range entries {
		if _, err := s.Get(ctx, e.path.Digest); err != nil {
			t.Fatalf("get %s: %v", e.path, err)
		}
		want += int64(len(e.nar))
		if got := tr.Bytes.Load(); got != want {
			t.Errorf("after %s: %d bytes counted, want %d (the NARs so far)", e.path, got, want)
		}
		if n := len(tr.Running()); n != 0 {
			t.Errorf("after %s: %d paths still counted as running", e.path, n)
		}
	}
	// Without Transfers in the context nothing is counted, and nothing fails.
	s2, _, _ := openURL(t, "nix+file://"+dir+"?trusted-public-keys="+url.QueryEscape(pk.String()))
	if _, err := s2.Get(context.Background(), entries[0].path.Digest); err != nil {
		t.Fatal(err)
	}
	if transfersFrom(context.Background()) != nil {
		t.Fatal("a context without Transfers has some")
	}
}
