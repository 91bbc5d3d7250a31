package glue

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ulikunitz/xz"

	"github.com/tvix-go/tvix/build"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/internal/netrc"
	"github.com/tvix-go/tvix/store/narcastore"
)

// fetchURLTimeout bounds waiting for a server's response headers; the body
// streams for as long as it flows.
const fetchURLTimeout = 60 * time.Second

// fetchURL is Nix's builtin:fetchurl builder, run in this process: it
// downloads the derivation's url into the store as its output (a file,
// executable when asked; with unpack a NAR, xz-compressed when the URL
// ends in .xz). As in Nix 2.8, it runs in the build's world: a file://
// URL names a file of the sandbox, which holds nothing to download.
func (r *Realiser) fetchURL(ctx context.Context, n *drvNode) (*castorev1.Node, error) {
	raw := n.drv.Env["url"]
	if raw == "" {
		return nil, fmt.Errorf("builtin:fetchurl: the derivation has no url")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("builtin:fetchurl: url %q: %w", raw, err)
	}
	switch u.Scheme {
	case "http", "https":
	case "file":
		return nil, &build.Failure{Message: fmt.Sprintf("unable to download '%s': Couldn't read a file:// file (37)", raw), ExitCode: -1}
	default:
		return nil, &build.Failure{Message: fmt.Sprintf("unable to download '%s': scheme %q is not supported by builtin:fetchurl here", raw, u.Scheme), ExitCode: -1}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return nil, fmt.Errorf("builtin:fetchurl: %w", err)
	}
	if r.NetrcFile != "" {
		e, err := netrc.Lookup(r.NetrcFile, u.Hostname())
		if err != nil {
			return nil, fmt.Errorf("builtin:fetchurl: netrc-file %s: %w", r.NetrcFile, err)
		}
		if e.Login != "" {
			req.SetBasicAuth(e.Login, e.Password)
		}
	}
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, ResponseHeaderTimeout: fetchURLTimeout}}
	resp, err := client.Do(req)
	if err != nil {
		return nil, &build.Failure{Message: fmt.Sprintf("unable to download '%s': %v", raw, err), ExitCode: -1}
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, &build.Failure{Message: fmt.Sprintf("unable to download '%s': HTTP error %d", raw, resp.StatusCode), ExitCode: -1}
	}
	if n.drv.Env["unpack"] == "1" {
		var body io.Reader = resp.Body
		if strings.HasSuffix(u.Path, ".xz") {
			xr, err := xz.NewReader(resp.Body)
			if err != nil {
				return nil, &build.Failure{Message: fmt.Sprintf("unpack '%s': %v", raw, err), ExitCode: -1}
			}
			body = xr
		}
		node, _, _, err := narcastore.Ingest(ctx, body, r.Blobs, r.Dirs)
		if err != nil {
			return nil, &build.Failure{Message: fmt.Sprintf("unpack '%s': %v", raw, err), ExitCode: -1}
		}
		return node, nil
	}
	w, err := r.Blobs.Put(ctx)
	if err != nil {
		return nil, err
	}
	size, err := io.Copy(w, resp.Body)
	if err != nil {
		w.Abort()
		return nil, &build.Failure{Message: fmt.Sprintf("unable to download '%s': %v", raw, err), ExitCode: -1}
	}
	d, err := w.Close()
	if err != nil {
		return nil, err
	}
	return &castorev1.Node{Node: &castorev1.Node_File{File: &castorev1.FileNode{Digest: d.Bytes(), Size: uint64(size),
		Executable: n.drv.Env["executable"] == "1"}}}, nil
}
