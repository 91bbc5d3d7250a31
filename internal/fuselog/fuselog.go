// Package fuselog routes go-fuse's log output to slog. go-fuse takes a
// *log.Logger (fuse.MountOptions.Logger) for connection trouble and, with
// Debug, every request; the kernel mount (castore/fs) and virtio-fs
// (virtiofs) hand it one from here, so its lines show up like every other
// log line of the process.
package fuselog

import (
	"context"
	"log"
	"log/slog"
	"strings"
)

// New returns a logger whose every line goes to l at level, prefixed
// "go-fuse: " since go-fuse's messages do not say where they come from.
func New(l *slog.Logger, level slog.Level) *log.Logger {
	return log.New(writer{l, level}, "", 0)
}

// writer gets one Write per log line (log.Logger guarantees that).
type writer struct {
	l     *slog.Logger
	level slog.Level
}

func (w writer) Write(p []byte) (int, error) {
	w.l.Log(context.Background(), w.level, "go-fuse: "+strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
