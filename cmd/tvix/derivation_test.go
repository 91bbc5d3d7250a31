package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tvix-go/tvix/nix/derivation"
)

func TestDerivationShowFile(t *testing.T) {
	// A .drv outside the store is keyed by the path it would have.
	src, err := os.ReadFile("../../nix/derivation/testdata/ss2p4wmxijn652haqyd7dckxwl4c7hxx-bar.drv")
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "some.drv")
	if err := os.WriteFile(f, src, 0o644); err != nil {
		t.Fatal(err)
	}
	drvs, err := loadDerivations([]string{f}, false, os.ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := drvs["/nix/store/ss2p4wmxijn652haqyd7dckxwl4c7hxx-bar.drv"]; !ok || len(drvs) != 1 {
		t.Fatalf("keys = %v", drvs)
	}
	var b bytes.Buffer
	if err := derivation.WriteJSON(&b, drvs); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `"hashAlgo": "r:sha1"`) {
		t.Fatalf("JSON lacks the output hash algorithm:\n%s", b.String())
	}

	if err := os.WriteFile(f, append(src, 'x'), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadDerivations([]string{f}, false, os.ReadFile); err == nil || !strings.Contains(err.Error(), "trailing data") {
		t.Fatalf("corrupt .drv: err = %v", err)
	}
}

// TestDerivationShowVerifyReadTheTvixStore: the .drv tvix instantiate just
// wrote is in the tvix store only, and show/verify find it there.
func TestDerivationShowVerifyReadTheTvixStore(t *testing.T) {
	dir := t.TempDir()
	expr := `derivation { name = "only-in-tvix"; builder = "/bin/sh"; system = "x86_64-linux"; marker = "` + dir + `";` +
		` dep = derivation { name = "dep-only-in-tvix"; builder = "/bin/sh"; system = "x86_64-linux"; marker = "` + dir + `"; }; }`
	env := []string{"XDG_DATA_HOME=" + t.TempDir()}
	out, stderr, err := run(t, env, "instantiate", "-E", expr)
	if err != nil {
		t.Fatalf("instantiate: %v %s", err, stderr)
	}
	drv := strings.TrimSpace(out)
	if _, err := os.Stat(drv); err == nil {
		t.Fatalf("%s is on the host too; the test would not show where it was read", drv)
	}
	out, stderr, err = run(t, env, "derivation", "show", "-r", drv)
	if err != nil || !strings.Contains(out, `"`+drv+`"`) || !strings.Contains(out, "dep-only-in-tvix.drv") {
		t.Fatalf("derivation show -r %s: %v %s\n%s", drv, err, stderr, out)
	}
	out, stderr, err = run(t, env, "derivation", "verify", drv)
	if err != nil || strings.TrimSpace(out) != drv+": ok" {
		t.Fatalf("derivation verify %s: %v %s\n%s", drv, err, stderr, out)
	}
	missing := "/nix/store/00000000000000000000000000000000-nowhere.drv"
	_, stderr, err = run(t, env, "derivation", "show", missing)
	if err == nil || !strings.Contains(stderr, missing+" is neither in the tvix store nor on this machine") {
		t.Fatalf("derivation show of a missing .drv: %v %q", err, stderr)
	}
}
