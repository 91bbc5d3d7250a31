package glue

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/tvix-go/tvix/build/buildv1"
	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/nix/derivation"
	"github.com/tvix-go/tvix/nix/nixbase32"
	"github.com/tvix-go/tvix/nix/storepath"
)

// Where Nix 2.8's sandbox puts things, as a builder sees them.
const (
	sandboxBuildDir = "/build"
	sandboxHome     = "/homeless-shelter"
)

// BuildRequest turns a derivation into the request a build backend runs:
// inputs are the castore root nodes of its input sources and of the used
// outputs of its input derivations (each named by its store path
// basename; the caller looks them up), the environment is the one Nix
// 2.8's sandbox gives a builder, and the outputs are the derivation's
// output paths. cores is NIX_BUILD_CORES.
func BuildRequest(drv *derivation.Derivation, inputs []*castorev1.Node, cores int) (*buildv1.BuildRequest, error) {
	req := &buildv1.BuildRequest{
		CommandArgs:  append([]string{drv.Builder}, drv.Args...),
		WorkingDir:   strings.TrimPrefix(sandboxBuildDir, "/"),
		ScratchPaths: []string{strings.TrimPrefix(sandboxBuildDir, "/"), strings.TrimPrefix(storepath.StoreDir, "/")},
		InputsDir:    strings.TrimPrefix(storepath.StoreDir, "/"),
		Constraints: &buildv1.BuildRequest_BuildConstraints{
			System: drv.System,
			// Fixed-output derivations fetch: their result is checked
			// against the hash, so they may reach the network.
			NetworkAccess: drv.IsFixedOutput(),
		},
	}
	env := map[string]string{}
	passAsFile := map[string]bool{}
	for _, n := range strings.Fields(drv.Env["passAsFile"]) {
		passAsFile[n] = true
	}
	if js, ok := drv.Env["__json"]; ok {
		// Structured attributes reach the builder as files, not as
		// variables.
		files, err := structuredAttrs(js, drv.Outputs)
		if err != nil {
			return nil, fmt.Errorf("build request: %w", err)
		}
		var name struct {
			Name string `json:"name"`
		}
		json.Unmarshal([]byte(js), &name)
		// Nix 2.8 names the files by its own temporary directory, not the
		// sandbox's; builders that follow the variables see that path,
		// which is under the building process's TMPDIR.
		hostDir := nixTempRoot() + "/nix-build-" + name.Name + ".drv-0"
		for _, f := range files {
			req.AdditionalFiles = append(req.AdditionalFiles, &buildv1.BuildRequest_AdditionalFile{
				Path: strings.TrimPrefix(sandboxBuildDir, "/") + "/" + f.name, Contents: f.contents})
		}
		env["NIX_ATTRS_JSON_FILE"] = hostDir + "/.attrs.json"
		env["NIX_ATTRS_SH_FILE"] = hostDir + "/.attrs.sh"
	}
	_, structured := drv.Env["__json"]
	for k, v := range drv.Env {
		if structured {
			break // none of the derivation's variables are set
		}
		if !passAsFile[k] {
			env[k] = v
			continue
		}
		// Nix names the file after the sha256 of the attribute name.
		sum := sha256.Sum256([]byte(k))
		fn := ".attr-" + nixbase32.EncodeToString(sum[:])
		req.AdditionalFiles = append(req.AdditionalFiles, &buildv1.BuildRequest_AdditionalFile{
			Path: strings.TrimPrefix(sandboxBuildDir, "/") + "/" + fn, Contents: []byte(v)})
		env[k+"Path"] = sandboxBuildDir + "/" + fn
	}
	for k, v := range map[string]string{
		"NIX_BUILD_TOP": sandboxBuildDir, "TMPDIR": sandboxBuildDir, "TEMPDIR": sandboxBuildDir,
		"TMP": sandboxBuildDir, "TEMP": sandboxBuildDir, "PWD": sandboxBuildDir,
		"HOME": sandboxHome, "PATH": "/path-not-set", "NIX_STORE": storepath.StoreDir,
		"NIX_BUILD_CORES": strconv.Itoa(max(cores, 1)), "NIX_LOG_FD": "2", "TERM": "xterm-256color",
	} {
		env[k] = v
	}
	for k, v := range env {
		req.EnvironmentVars = append(req.EnvironmentVars, &buildv1.BuildRequest_EnvVar{Key: k, Value: []byte(v)})
	}
	sort.Slice(req.EnvironmentVars, func(i, j int) bool { return req.EnvironmentVars[i].Key < req.EnvironmentVars[j].Key })
	sort.Slice(req.AdditionalFiles, func(i, j int) bool { return req.AdditionalFiles[i].Path < req.AdditionalFiles[j].Path })

	var names []string
	for name := range drv.Outputs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		sp, _, err := storepath.ParsePrefix(drv.Outputs[name].Path)
		if err != nil {
			return nil, fmt.Errorf("build request: output %s: %w", name, err)
		}
		req.Outputs = append(req.Outputs, req.InputsDir+"/"+sp.Basename())
		req.RefscanNeedles = append(req.RefscanNeedles, sp.HashPart())
	}
	req.Inputs = append(req.Inputs, inputs...)
	sort.Slice(req.Inputs, func(i, j int) bool {
		return string(castore.NodeName(req.Inputs[i])) < string(castore.NodeName(req.Inputs[j]))
	})
	for _, n := range req.Inputs {
		sp, err := storepath.FromBasename(string(castore.NodeName(n)))
		if err != nil {
			return nil, fmt.Errorf("build request: input: %w", err)
		}
		req.RefscanNeedles = append(req.RefscanNeedles, sp.HashPart())
	}
	return req, nil
}

// nixTempRoot is where Nix 2.8 makes a build's temporary directory: TMPDIR
// or /tmp, its symbolic links resolved (createTempDir's canonPath).
func nixTempRoot() string {
	root := os.Getenv("TMPDIR")
	if root == "" {
		root = "/tmp"
	}
	if real, err := filepath.EvalSymlinks(root); err == nil {
		root = real
	}
	return filepath.Clean(root)
}
