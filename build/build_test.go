package build

import (
	"strings"
	"testing"

	"github.com/tvix-go/tvix/build/buildv1"
	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
)

func fileNode(name string) *castorev1.Node {
	return &castorev1.Node{Node: &castorev1.Node_File{File: &castorev1.FileNode{Name: []byte(name), Digest: castore.EmptyBlobDigest.Bytes()}}}
}

const (
	inA = "00000000000000000000000000000000-a"
	inB = "11111111111111111111111111111111-b"
	out = "nix/store/22222222222222222222222222222222-out"
)

func goodRequest() *buildv1.BuildRequest {
	return &buildv1.BuildRequest{
		Inputs:          []*castorev1.Node{fileNode(inA), fileNode(inB)},
		CommandArgs:     []string{"/nix/store/" + inA},
		WorkingDir:      "build",
		ScratchPaths:    []string{"build", "nix/store"},
		InputsDir:       "nix/store",
		Outputs:         []string{out},
		EnvironmentVars: []*buildv1.BuildRequest_EnvVar{{Key: "A"}, {Key: "B"}},
		RefscanNeedles:  []string{"22222222222222222222222222222222"},
	}
}

func TestValidate(t *testing.T) {
	if err := Validate(goodRequest()); err != nil {
		t.Fatalf("good request: %v", err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(r *buildv1.BuildRequest)
		want   string
	}{
		{"input not a store path", func(r *buildv1.BuildRequest) { r.Inputs[0] = fileNode("hello") }, `input "hello" is not named by a store path basename`},
		{"duplicate input", func(r *buildv1.BuildRequest) { r.Inputs[1] = fileNode(inA) }, "given twice"},
		{"unsorted inputs", func(r *buildv1.BuildRequest) { r.Inputs[0], r.Inputs[1] = r.Inputs[1], r.Inputs[0] }, "not sorted"},
		{"output outside the store", func(r *buildv1.BuildRequest) { r.Outputs = []string{"etc/22222222222222222222222222222222-out"} }, "not directly below inputs_dir"},
		{"absolute output", func(r *buildv1.BuildRequest) { r.Outputs = []string{"/" + out} }, "is absolute"},
		{"output escaping", func(r *buildv1.BuildRequest) { r.Outputs = []string{"nix/store/../../x"} }, "not a clean path"},
		{"output not a store path", func(r *buildv1.BuildRequest) { r.Outputs = []string{"nix/store/out"} }, "is not a store path"},
		{"no outputs", func(r *buildv1.BuildRequest) { r.Outputs = nil }, "no outputs"},
		{"no command", func(r *buildv1.BuildRequest) { r.CommandArgs = nil }, "no command_args"},
		{"working dir escaping", func(r *buildv1.BuildRequest) { r.WorkingDir = "../build" }, "working_dir"},
		{"unsorted env", func(r *buildv1.BuildRequest) { r.EnvironmentVars[0].Key = "C" }, "not sorted"},
		{"bad env key", func(r *buildv1.BuildRequest) { r.EnvironmentVars[0].Key = "A=B" }, "contains = or NUL"},
		{"additional file outside", func(r *buildv1.BuildRequest) {
			r.AdditionalFiles = []*buildv1.BuildRequest_AdditionalFile{{Path: "/etc/passwd"}}
		}, "additional file"},
		{"bad needle", func(r *buildv1.BuildRequest) { r.RefscanNeedles = []string{"short"} }, "refscan needle"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := goodRequest()
			tc.mutate(r)
			if err := Validate(r); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
