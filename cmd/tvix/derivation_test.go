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
	drvs, err := loadDerivations([]string{f}, false)
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
	if _, err := loadDerivations([]string{f}, false); err == nil || !strings.Contains(err.Error(), "trailing data") {
		t.Fatalf("corrupt .drv: err = %v", err)
	}
}
