package narbridge

import (
	"bytes"
	"io"
	"net/http"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func TestAcceptsZstd(t *testing.T) {
	for _, c := range []struct {
		header string
		want   bool
	}{
		{"", false},
		{"zstd", true},
		{"gzip, deflate, br, zstd", true},
		{"gzip;q=1.0, ZSTD;q=0.5", true},
		{"zstd;q=0", false},
		{"zstd;q=0.0, gzip", false},
		{"zstd;q=bogus", false},
		{"gzip, zstdx", false},
		{"*", false}, // identity is what * gets: no format is named
	} {
		if got := acceptsZstd(c.header); got != c.want {
			t.Errorf("acceptsZstd(%q) = %v, want %v", c.header, got, c.want)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:5000": true, "[::1]:80": true, "127.8.9.1:1": true, "@": true, "": true,
		"10.0.0.2:5000": false, "[2001:db8::1]:443": false, "192.168.1.1:80": false,
	} {
		if got := isLoopback(addr); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

// TestZstdContentEncoding: a client accepting zstd gets the NAR zstd
// encoded (where it is not on loopback, or the bridge is told to compress
// loopback too), and the decoded body is the NAR; others get it as is.
func TestZstdContentEncoding(t *testing.T) {
	content := randomContent(3 << 20)
	for _, loopback := range []bool{false, true} {
		f := newPackFixture(t, content)
		f.h.opts.CompressLoopback = loopback
		for _, accept := range []string{"", "zstd", "gzip"} {
			req, _ := http.NewRequest(http.MethodGet, f.nurl, nil)
			if accept != "" {
				req.Header.Set("Accept-Encoding", accept)
			}
			resp, err := (&http.Client{Transport: &http.Transport{DisableCompression: true}}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("accept %q: %s %v", accept, resp.Status, err)
			}
			wantZstd := accept == "zstd" && loopback
			if got := resp.Header.Get("Content-Encoding"); (got == "zstd") != wantZstd || (got != "" && got != "zstd") {
				t.Fatalf("accept %q, compress loopback %v: Content-Encoding %q", accept, loopback, got)
			}
			if resp.Header.Get("Vary") != "Accept-Encoding" {
				t.Errorf("accept %q: Vary %q, want Accept-Encoding", accept, resp.Header.Get("Vary"))
			}
			if wantZstd {
				d, _ := zstd.NewReader(bytes.NewReader(body))
				body, err = io.ReadAll(d)
				d.Close()
				if err != nil {
					t.Fatalf("decode zstd body: %v", err)
				}
			}
			if !bytes.Equal(body, f.up.nar) {
				t.Errorf("accept %q, compress loopback %v: %d bytes, not the NAR", accept, loopback, len(body))
			}
		}
	}
}
