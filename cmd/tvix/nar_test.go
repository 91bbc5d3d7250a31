package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func runStdin(t *testing.T, stdin []byte, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(tvixBinary(t), args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out) + stderr.String(), err
	}
	return string(out), nil
}

func TestNarCommands(t *testing.T) {
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	if err := os.MkdirAll(filepath.Join(tree, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(tree, "sub", "hello"), []byte("Hello World!"), 0o755)
	os.Symlink("sub/hello", filepath.Join(tree, "link"))

	narBytes, err := runStdin(t, nil, "nar", "dump", tree)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := runStdin(t, []byte(narBytes), "nar", "ls")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"dir  -", "/link -> sub/hello", "file x           12 /sub/hello"} {
		if !strings.Contains(ls, want) {
			t.Errorf("nar ls output lacks %q:\n%s", want, ls)
		}
	}
	if out, err := runStdin(t, []byte(narBytes[:len(narBytes)-9]), "nar", "ls"); err == nil || !strings.Contains(out, "truncated") {
		t.Errorf("nar ls of a truncated NAR: %v %s", err, out)
	}
	sri, err := runStdin(t, nil, "nar", "hash", "--format", "sri", tree)
	if err != nil || !strings.HasPrefix(sri, "sha256-") {
		t.Errorf("nar hash: %q %v", sri, err)
	}

	sec, pub := filepath.Join(dir, "k.sec"), filepath.Join(dir, "k.pub")
	if out, err := runStdin(t, nil, "narinfo", "generate-key", "test-key-1", sec, pub); err != nil {
		t.Fatal(out, err)
	}
	pk, _ := os.ReadFile(pub)
	ni := "StorePath: /nix/store/syd87l2rxw8cbsxmxl853h0r6pdwhwjr-curl-7.82.0-bin\nURL: nar/x.nar\nNarHash: sha256:1b4sb93wp679q4zx9k1ignby1yna3z7c4c2ri3wphylbc2dwsys0\nNarSize: 196040\nReferences: \n"
	signed, err := runStdin(t, []byte(ni), "narinfo", "sign", "--key-file", sec)
	if err != nil || !strings.Contains(signed, "Sig: test-key-1:") {
		t.Fatalf("narinfo sign: %v\n%s", err, signed)
	}
	if out, err := runStdin(t, []byte(signed), "narinfo", "verify", "-k", string(pk)); err != nil {
		t.Errorf("narinfo verify with the signing key: %v %s", err, out)
	}
	if _, err := runStdin(t, []byte(signed), "narinfo", "verify", "-k", "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="); err == nil {
		t.Error("narinfo verify accepted a narinfo not signed by the trusted key")
	}
}
