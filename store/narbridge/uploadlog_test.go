package narbridge

import (
	"bytes"
	"compress/gzip"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestUploadIsLogged: the daemon says, at the default level, each path a
// nix copy --to has sent.
func TestUploadIsLogged(t *testing.T) {
	var log lockedBuffer
	f := newFixture(t, Options{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	u := newUpload(t, "sample", "", "hello")
	if st, b, _ := f.do(t, "PUT", "/"+u.url, u.file); st != http.StatusOK {
		t.Fatalf("PUT NAR: %d %s", st, b)
	}
	if st, b, _ := f.do(t, "PUT", "/"+u.path.HashPart()+".narinfo", []byte(u.narinfo.String())); st != http.StatusOK {
		t.Fatalf("PUT narinfo: %d %s", st, b)
	}
	if got := log.String(); !strings.Contains(got, "level=INFO msg=\"received upload\" path="+u.path.String()) {
		t.Fatalf("log lacks the upload:\n%s", got)
	}
}

// TestGzipUploadSaysGzip: gzip data sent as an uncompressed NAR is
// named as such, not as a NAR magic of a few exabytes.
func TestGzipUploadSaysGzip(t *testing.T) {
	f := newFixture(t, Options{})
	u := newUpload(t, "sample", "", "hello")
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write(u.nar)
	w.Close()
	st, body, _ := f.do(t, "PUT", "/nar/"+nb32(sha(gz.Bytes()))+".nar", gz.Bytes())
	if st != http.StatusBadRequest || !strings.Contains(string(body), "this is gzip-compressed data, not a NAR") {
		t.Fatalf("gzip upload: %d %s", st, body)
	}
}
