package narbridge

import (
	"encoding/hex"
	"io"
	"math/rand"
	"net/http"
	"testing"
)

// BenchmarkServeNAR serves one 48 MiB NAR of half-compressible bytes from
// a pack store over loopback, as it is (sendfile) and zstd encoded (what a
// remote client accepting zstd gets); the rate is of NAR bytes.
func BenchmarkServeNAR(b *testing.B) {
	raw := make([]byte, 24<<20)
	rand.New(rand.NewSource(1)).Read(raw)
	f := newPackFixture(b, hex.EncodeToString(raw))
	f.h.opts.CompressLoopback = true
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	buf := make([]byte, 256<<10)
	for _, enc := range []string{"identity", "zstd"} {
		b.Run(enc, func(b *testing.B) {
			b.SetBytes(int64(len(f.up.nar)))
			for b.Loop() {
				req, _ := http.NewRequest(http.MethodGet, f.nurl, nil)
				req.Header.Set("Accept-Encoding", enc)
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				for {
					_, err := resp.Body.Read(buf)
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				resp.Body.Close()
				if got := resp.Header.Get("Content-Encoding"); (got == "zstd") != (enc == "zstd") {
					b.Fatalf("asked for %s, Content-Encoding %q", enc, got)
				}
			}
		})
	}
}
