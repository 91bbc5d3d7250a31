package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tvix-go/tvix/eval"
	"github.com/tvix-go/tvix/glue"
	"github.com/tvix-go/tvix/store/closure"
	"github.com/tvix-go/tvix/store/registry"
)

// POST /eval evaluates an expression or file (computing paths only, as
// nix-instantiate --readonly-mode), and substitutes the closures of the
// outputs it names into the daemon's store from its substituters, so a
// client can ask for "import ./hello.nix" instead of store paths. It is
// plain HTTP with JSON (see docs/daemon-eval.md).

// evalRequest is the body of POST /eval (or the query of GET /eval).
type evalRequest struct {
	// Expr is a Nix expression; relative paths in it are resolved
	// against Dir. Exactly one of Expr and File is given.
	Expr string `json:"expr,omitempty"`
	// File is an absolute path to a .nix file (or a directory with a
	// default.nix), as the daemon sees it.
	File string `json:"file,omitempty"`
	// Attr lists attribute paths to select, as -A (each may pick an
	// output: "hello.dev"); none selects the whole value.
	Attr []string `json:"attr,omitempty"`
	// Include adds search path entries, as -I (NAME=PATH or PATH).
	Include []string `json:"include,omitempty"`
	// Dir is the directory Expr's relative paths start from; default the
	// daemon's working directory.
	Dir string `json:"dir,omitempty"`
	// Substitute is "closure" (the default: fetch the selected outputs
	// and everything they reference into the store before answering) or
	// "none" (only evaluate; a mount or virtio-fs served by the daemon
	// still substitutes each path when it is looked up).
	Substitute string `json:"substitute,omitempty"`
	// ShowTrace adds the call trace to evaluation errors.
	ShowTrace bool `json:"showTrace,omitempty"`
}

// evalResponse is what /eval answers with status 200.
type evalResponse struct {
	// Derivations are those the selected values name, in
	// nix-instantiate's order, each with all its outputs.
	Derivations []evalResponseDrv `json:"derivations"`
	// Paths are the selected output paths: all outputs of a derivation,
	// or the one an output attribute picked.
	Paths []string `json:"paths"`
	// Closure is every path now in the store because of the request:
	// Paths and their references (sorted); absent with substitute "none".
	Closure []string `json:"closure,omitempty"`
	// NarBytes is the NAR size of Closure.
	NarBytes uint64 `json:"narBytes,omitempty"`
}

type evalResponseDrv struct {
	Attr    string            `json:"attr"`
	DrvPath string            `json:"drvPath"`
	Outputs map[string]string `json:"outputs"`
}

type evalHandler struct {
	s    *registry.Services
	jobs chan struct{}
}

func newEvalHandler(s *registry.Services, jobs int) *evalHandler {
	return &evalHandler{s: s, jobs: make(chan struct{}, jobs)}
}

func (h *evalHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/eval" {
		httpError(w, http.StatusNotFound, "not found: the daemon's eval endpoint is POST /eval")
		return
	}
	req, err := parseEvalRequest(r)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx := r.Context()
	select {
	case h.jobs <- struct{}{}:
	case <-ctx.Done():
		return
	}
	start := time.Now()
	drvs, err := glue.EvalDerivations(ctx, glue.Target{Exprs: nonEmpty(req.Expr), Files: nonEmpty(req.File),
		Attrs: req.Attr, Include: req.Include, Dir: req.Dir})
	<-h.jobs
	if err != nil {
		var ee *eval.Error
		msg := err.Error()
		if errors.As(err, &ee) {
			msg = ee.Format(req.ShowTrace)
		}
		slog.Info("eval failed", "expr", req.Expr, "file", req.File, "attr", req.Attr, "took", time.Since(start).Round(time.Millisecond))
		httpError(w, http.StatusUnprocessableEntity, msg)
		return
	}
	resp := evalResponse{Derivations: make([]evalResponseDrv, 0, len(drvs)), Paths: []string{}}
	seen := map[string]bool{}
	for _, d := range drvs {
		resp.Derivations = append(resp.Derivations, evalResponseDrv{Attr: d.Attr, DrvPath: d.DrvPath, Outputs: d.Outputs})
		for _, o := range d.Selected.Selected {
			if p := d.Outputs[o]; !seen[p] {
				seen[p] = true
				resp.Paths = append(resp.Paths, p)
			}
		}
	}
	slog.Info("evaluated", "expr", req.Expr, "file", req.File, "attr", req.Attr, "derivations", len(drvs), "took", time.Since(start).Round(time.Millisecond))
	if req.Substitute == "closure" {
		roots, err := glue.ChosenPaths(drvs)
		if err != nil {
			httpError(w, http.StatusInternalServerError, err.Error())
			return
		}
		var mu sync.Mutex
		start := time.Now()
		n, narBytes, err := closure.Copy(ctx, closure.Store{Blobs: h.s.Blobs, Dirs: h.s.Directories, PathInfos: h.s.PathInfos}, roots, func(_ int, _ uint64, p string) {
			mu.Lock()
			resp.Closure = append(resp.Closure, p)
			mu.Unlock()
		})
		if err != nil {
			// The store or an upstream failed, not the request.
			httpError(w, http.StatusBadGateway, fmt.Sprintf("substitute the closure of %s: %v", strings.Join(resp.Paths, " "), err))
			return
		}
		sort.Strings(resp.Closure)
		resp.NarBytes = narBytes
		slog.Info("substituted closure", "paths", n, "nar_bytes", narBytes, "took", time.Since(start).Round(time.Millisecond))
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(resp)
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// parseEvalRequest reads a JSON body (POST) or query parameters (GET:
// expr, file, attr and include repeatable, dir, substitute, showTrace).
func parseEvalRequest(r *http.Request) (evalRequest, error) {
	var req evalRequest
	switch r.Method {
	case http.MethodPost:
		dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return req, fmt.Errorf("read JSON body: %w", err)
		}
	case http.MethodGet:
		q := r.URL.Query()
		req = evalRequest{Expr: q.Get("expr"), File: q.Get("file"), Attr: q["attr"], Include: q["include"],
			Dir: q.Get("dir"), Substitute: q.Get("substitute"), ShowTrace: q.Get("showTrace") == "true"}
	default:
		return req, fmt.Errorf("method %s: use POST with a JSON body or GET with a query", r.Method)
	}
	if (req.Expr == "") == (req.File == "") {
		return req, errors.New(`give exactly one of "expr" and "file"`)
	}
	if req.File != "" && !filepath.IsAbs(req.File) {
		return req, fmt.Errorf("file %q: want an absolute path", req.File)
	}
	if req.Dir == "" {
		req.Dir, _ = os.Getwd()
	} else if !filepath.IsAbs(req.Dir) {
		return req, fmt.Errorf("dir %q: want an absolute path", req.Dir)
	}
	switch req.Substitute {
	case "":
		req.Substitute = "closure"
	case "closure", "none":
	default:
		return req, fmt.Errorf("substitute %q: want \"closure\" or \"none\"", req.Substitute)
	}
	return req, nil
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
