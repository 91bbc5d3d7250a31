package fuselog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	New(l, slog.LevelWarn).Printf("writer: Write failed, err: %v", "EPIPE")
	New(l, slog.LevelDebug).Print("request traced")
	got := buf.String()
	if want := `level=WARN msg="go-fuse: writer: Write failed, err: EPIPE"` + "\n"; !strings.HasSuffix(got, want) || strings.Count(got, "\n") != 1 {
		t.Errorf("logged %q, want one line ending in %q (the debug line filtered)", got, want)
	}
}
