package narbridge

import (
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// zstd Content-Encoding of uncompressed NARs, as Tvix's nar-bridge
// answers a client that accepts it. A loopback client gets the NAR as it
// is: the kernel copies faster than any compressor (sendfile serves it at
// several GB/s, zstd's fastest level at well under one), so compressing
// would only make it wait.

// acceptsZstd reports whether an Accept-Encoding header admits zstd.
func acceptsZstd(header string) bool {
	for _, part := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "zstd") {
			continue
		}
		q, ok := strings.CutPrefix(strings.TrimSpace(params), "q=")
		if !ok {
			return true
		}
		v, err := strconv.ParseFloat(q, 64)
		return err == nil && v > 0
	}
	return false
}

// isLoopback: the client is on this machine (a loopback address or a
// unix socket, whose RemoteAddr is not host:port).
func isLoopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err != nil || a.IsLoopback()
}

func (h *Handler) zstdEncoding(r *http.Request) bool {
	return r.Method == http.MethodGet && r.Header.Get("Range") == "" &&
		acceptsZstd(r.Header.Get("Accept-Encoding")) && (h.opts.CompressLoopback || !isLoopback(r.RemoteAddr))
}

// zstdEncoders are reused: an encoder's tables cost more to make than a
// small NAR costs to compress.
var zstdEncoders = sync.Pool{New: func() any {
	e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		panic(err) // constant, valid options
	}
	return e
}}

// pooledZstd is a zstd writer whose Close returns the encoder to the pool.
type pooledZstd struct{ *zstd.Encoder }

func newPooledZstd(w io.Writer) pooledZstd {
	e := zstdEncoders.Get().(*zstd.Encoder)
	e.Reset(w)
	return pooledZstd{e}
}

func (p pooledZstd) Close() error {
	err := p.Encoder.Close()
	if err == nil {
		zstdEncoders.Put(p.Encoder)
	}
	return err
}
