package build

import "fmt"

// The identity a builder has in Nix 2.8's sandbox
// (libstore/build/local-derivation-goal.cc), which every backend gives it.
const (
	SandboxUID = 1000
	SandboxGID = 100
)

// SandboxEtc is the /etc Nix 2.8 writes into a sandbox: the build user
// and its group, and a hosts file naming only localhost.
func SandboxEtc() map[string]string {
	return map[string]string{
		"passwd": fmt.Sprintf("root:x:0:0:Nix build user:/build:/noshell\nnixbld:x:%d:%d:Nix build user:/build:/noshell\nnobody:x:65534:65534:Nobody:/:/noshell\n", SandboxUID, SandboxGID),
		"group":  fmt.Sprintf("root:x:0:\nnixbld:!:%d:\nnogroup:x:65534:\n", SandboxGID),
		"hosts":  "127.0.0.1 localhost\n::1 localhost\n",
	}
}
