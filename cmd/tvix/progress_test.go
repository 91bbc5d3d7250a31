package main

import (
	"bytes"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tvix-go/tvix/castore/fstree"
	"github.com/tvix-go/tvix/store/nixcache"
)

// TestTransfersNow: a copy names the path with most left to fetch, how
// far it got, and how many others are fetched beside it.
func TestTransfersNow(t *testing.T) {
	tr := func(size, got int64) *nixcache.Transfer {
		x := &nixcache.Transfer{NarSize: size}
		x.Bytes.Store(got)
		return x
	}
	for _, c := range []struct {
		running map[string]*nixcache.Transfer
		want    string
	}{
		{nil, ""},
		{map[string]*nixcache.Transfer{"/nix/store/aaaa-hello": tr(200, 50)}, "aaaa-hello 25%"},
		{map[string]*nixcache.Transfer{
			"/nix/store/aaaa-small":   tr(10, 1),
			"/nix/store/bbbb-firefox": tr(1000, 450),
			"/nix/store/cccc-done":    tr(500, 500),
		}, "bbbb-firefox 45% (+2)"},
		{map[string]*nixcache.Transfer{"/nix/store/dddd-empty": tr(0, 0)}, "dddd-empty 0%"},
	} {
		if got := transfersNow(c.running); got != c.want {
			t.Errorf("transfersNow(%v) = %q, want %q", c.running, got, c.want)
		}
	}
}

// TestProgressNamesCurrent: the bar and the log lines both say what is
// being worked on.
func TestProgressNamesCurrent(t *testing.T) {
	var bar syncBuffer
	var logs bytes.Buffer
	poll := func() progressState { return progressState{Bytes: 1 << 20, Items: 3, Current: "bbbb-firefox 45%"} }
	stop := showProgress(progressStyle{bar: &bar, delay: time.Millisecond}, "copying", "paths", poll)
	time.Sleep(300 * time.Millisecond)
	stop()
	stop = showProgress(progressStyle{log: slog.New(slog.NewTextHandler(&logs, nil)), interval: 20 * time.Millisecond, delay: time.Millisecond}, "copying", "paths", poll)
	time.Sleep(100 * time.Millisecond)
	stop()
	if !strings.Contains(bar.String(), "copying: 3 paths, bbbb-firefox 45%") {
		t.Errorf("bar does not name the current path:\n%q", bar.String())
	}
	if !strings.Contains(logs.String(), `current="bbbb-firefox 45%"`) {
		t.Errorf("log lines do not name the current path:\n%s", logs.String())
	}
}

// TestProgressLogHasNoCarriageReturns: without a terminal, progress is
// plain log lines, one per interval, with what was done.
func TestProgressLogHasNoCarriageReturns(t *testing.T) {
	var buf bytes.Buffer
	var n atomic.Int64
	st := progressStyle{log: slog.New(slog.NewTextHandler(&buf, nil)), interval: 20 * time.Millisecond, delay: 10 * time.Millisecond}
	stop := showProgress(st, "importing x", "files", func() progressState {
		return progressState{Bytes: n.Add(1 << 20), Total: 100 << 20, Items: 3}
	})
	time.Sleep(120 * time.Millisecond)
	stop()
	out := buf.String()
	if strings.Contains(out, "\r") {
		t.Fatalf("log progress has \\r:\n%q", out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 || !strings.Contains(lines[0], `msg="importing x"`) || !strings.Contains(lines[0], "files=3") ||
		!strings.Contains(lines[0], "total_bytes=104857600") || !strings.Contains(lines[0], "percent=") {
		t.Fatalf("log progress:\n%s", out)
	}
}

// TestProgressBarOnTerminal: a terminal gets a redrawn bar with bytes,
// rate and (with a known size) the remaining time.
func TestProgressBarOnTerminal(t *testing.T) {
	var buf syncBuffer
	var n atomic.Int64
	st := progressStyle{bar: &buf, delay: time.Millisecond}
	stop := showProgress(st, "verifying", "paths", func() progressState {
		return progressState{Bytes: n.Add(10 << 20), Total: 1 << 30, Items: 2}
	})
	time.Sleep(700 * time.Millisecond)
	stop()
	out := buf.String()
	for _, want := range []string{"\r", "verifying: 2 paths", "MB/s", "MB"} {
		if !strings.Contains(out, want) {
			t.Errorf("bar lacks %q:\n%q", want, out)
		}
	}
	if !strings.Contains(out, "[") || !strings.Contains(out, ":") {
		t.Errorf("bar lacks the remaining time:\n%q", out)
	}
}

// TestProgressQuickWorkShowsNothing: work done before the delay prints
// nothing at all.
func TestProgressQuickWorkShowsNothing(t *testing.T) {
	var buf syncBuffer
	stop := showProgress(progressStyle{bar: &buf, delay: time.Hour}, "x", "", func() progressState { return progressState{} })
	stop()
	if buf.String() != "" {
		t.Fatalf("quick work printed %q", buf.String())
	}
}

func TestByteCountsForPeople(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 bytes", 999: "999 bytes", 36192: "36.2 kB", 2141952: "2.1 MB", 5e9: "5.0 GB"} {
		if got := mb(n); got != want {
			t.Errorf("mb(%d) = %q, want %q", n, got, want)
		}
	}
	if count(1, "path") != "1 path" || count(0, "path") != "0 paths" || count(2, "store path") != "2 store paths" {
		t.Error("count does not pluralise")
	}
}

// TestTreeProgressStops: stopping an import's progress returns (and ends
// the size count behind it).
func TestTreeProgressStops(t *testing.T) {
	done := make(chan struct{})
	go func() {
		treeProgress("importing", t.TempDir(), &fstree.Progress{})()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("stop did not return")
	}
}
