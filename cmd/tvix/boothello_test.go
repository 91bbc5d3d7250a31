package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/tvix-go/tvix/internal/nixtest"
	"github.com/tvix-go/tvix/internal/testenv"
)

// TestBootHelloScript runs scripts/boot-hello: real Nix builds hello, the
// daemon substitutes it lazily from a local binary cache and a MicroVM
// runs it over virtio-fs (KVM when usable, TCG otherwise).
func TestBootHelloScript(t *testing.T) {
	nixtest.Require(t)
	testenv.Tool(t, "qemu-system-x86_64", "qemu-system-x86")
	testenv.Tool(t, "qemu-img", "qemu-utils")
	testenv.Tool(t, "busybox", "busybox-static")
	cmd := exec.Command("../../scripts/boot-hello")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("boot-hello: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Hello, world!") || !strings.Contains(string(out), "boot-hello: OK") {
		t.Fatalf("boot-hello output:\n%s", out)
	}
	t.Log(string(out[strings.LastIndex(string(out), "boot-hello: OK"):]))
}
