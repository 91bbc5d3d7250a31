package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestBootHelloScript runs scripts/boot-hello: real Nix builds hello, the
// daemon substitutes it lazily from a local binary cache and a MicroVM
// runs it over virtio-fs (KVM when usable, TCG otherwise).
func TestBootHelloScript(t *testing.T) {
	requireNix(t)
	for _, tool := range []string{"qemu-system-x86_64", "qemu-img", "busybox"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is required under CI", tool)
			}
			t.Skipf("%s not installed", tool)
		}
	}
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
