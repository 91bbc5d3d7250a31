package main

import (
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/tvix-go/tvix/castore/fstree"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/nixcache"
)

// progressState is what a long operation has done so far. Total is 0
// while the size of the whole is not known (a copy's closure is found as
// it goes).
type progressState struct {
	Bytes, Total, Items int64
	// Current names what is being worked on ("…-firefox-120 45%"), when
	// the operation can say.
	Current string
}

// progressStyle is how progress reaches the user.
type progressStyle struct {
	bar      io.Writer     // a terminal: redraw a bar there
	log      *slog.Logger  // otherwise: a log line per interval
	interval time.Duration // between log lines
	delay    time.Duration // nothing is shown for work done quicker
}

// stderrProgress draws a bar when stderr is a terminal. Anything else is
// a log (a file, journald, CI): there a redrawn line would pile up as \r
// garbage, so it gets a plain line every 10 s.
func stderrProgress() progressStyle {
	if term.IsTerminal(int(os.Stderr.Fd())) {
		return progressStyle{bar: os.Stderr, delay: 500 * time.Millisecond}
	}
	return progressStyle{log: slog.Default(), interval: 10 * time.Second, delay: 10 * time.Second}
}

// showProgress reports what poll returns until stop is called. what says
// the operation ("importing /src"), items what it counts ("files").
func showProgress(st progressStyle, what, items string, poll func() progressState) (stop func()) {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		start := time.Now()
		tick := 200 * time.Millisecond
		if st.bar == nil {
			tick = st.interval
		}
		var bar *progressbar.ProgressBar
		var t *time.Ticker
		select {
		case <-done:
			return
		case <-time.After(st.delay):
			t = time.NewTicker(tick)
			defer t.Stop()
		}
		for {
			s := poll()
			if st.bar != nil {
				bar = drawBar(st.bar, bar, what, items, s)
			} else {
				secs := time.Since(start).Seconds()
				args := []any{"bytes", s.Bytes, "mb_per_s", fmt.Sprintf("%.1f", float64(s.Bytes)/1e6/secs)}
				if s.Total > 0 {
					args = append(args, "total_bytes", s.Total, "percent", 100*s.Bytes/s.Total)
				}
				if items != "" {
					args = append(args, items, s.Items)
				}
				if s.Current != "" {
					args = append(args, "current", s.Current)
				}
				st.log.Info(what, args...)
			}
			select {
			case <-done:
				if bar != nil {
					// The command's own result line follows; the bar
					// has served its purpose.
					bar.Clear()
				}
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); <-stopped }
}

func drawBar(w io.Writer, bar *progressbar.ProgressBar, what, items string, s progressState) *progressbar.ProgressBar {
	desc := what
	if items != "" {
		desc = fmt.Sprintf("%s: %d %s", what, s.Items, items)
	}
	if s.Current != "" {
		desc += ", " + s.Current
	}
	if bar == nil {
		max := s.Total
		if max <= 0 {
			max = -1 // a spinner with bytes and rate until the size is known
		}
		bar = progressbar.NewOptions64(max, progressbar.OptionSetWriter(w), progressbar.OptionShowBytes(true), progressbar.OptionShowCount(), progressbar.OptionShowTotalBytes(true),
			progressbar.OptionSetDescription(desc), progressbar.OptionSetPredictTime(true), progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(0), progressbar.OptionUseANSICodes(true), progressbar.OptionSpinnerType(14),
			// No ticker of the library's own: this loop redraws every 200 ms,
			// and the library's ticker renders while Clear reads the same
			// buffer unlocked (a data race in progressbar 3.19.1).
			progressbar.OptionSetSpinnerChangeInterval(0))
	}
	if s.Total > 0 && bar.GetMax64() != s.Total {
		bar.ChangeMax64(s.Total)
	}
	bar.Describe(desc)
	bar.Set64(s.Bytes)
	return bar
}

// treeProgress shows an import of the tree at root counted by p; the
// tree's size is summed alongside (stats only), so a bar can show how
// much is left.
func treeProgress(what, root string, p *fstree.Progress) (stop func()) {
	var total atomic.Int64
	var finished atomic.Bool
	go func() {
		var sum int64
		filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
			if finished.Load() {
				return filepath.SkipAll // the import is done before the count
			}
			if err == nil && d.Type().IsRegular() {
				if fi, err := d.Info(); err == nil {
					sum += fi.Size()
				}
			}
			return nil
		})
		total.Store(sum)
	}()
	stopShowing := showProgress(stderrProgress(), what, "files", func() progressState {
		return progressState{Bytes: p.Bytes.Load(), Total: total.Load(), Items: p.Files.Load()}
	})
	return func() { finished.Store(true); stopShowing() }
}

// transfersNow says which paths a substitution is fetching: the one with
// most left, how far it got, and how many others run beside it.
func transfersNow(running map[string]*nixcache.Transfer) string {
	var name string
	var left int64 = -1
	var pct int64
	for p, tr := range running {
		got := tr.Bytes.Load()
		if l := tr.NarSize - got; l > left || l == left && p < name {
			name, left = p, l
			if tr.NarSize > 0 {
				pct = 100 * got / tr.NarSize
			}
		}
	}
	if name == "" {
		return ""
	}
	s := fmt.Sprintf("%s %d%%", strings.TrimPrefix(name, storepath.StoreDir+"/"), pct)
	if len(running) > 1 {
		s += fmt.Sprintf(" (+%d)", len(running)-1)
	}
	return s
}

// mb is a byte count for people.
func mb(n uint64) string {
	switch {
	case n < 1e3:
		return fmt.Sprintf("%d bytes", n)
	case n < 1e6:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	case n < 1e9:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%.1f GB", float64(n)/1e9)
}

// count is "1 path", "2 paths".
func count(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
