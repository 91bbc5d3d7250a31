package pathinfo_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tvix-go/tvix/nix/narinfo"
)

// The narinfo vectors live with the narinfo parser.
var (
	curlNarinfo = readNarinfoVector("curl.narinfo")
	drvNarinfo  = readNarinfoVector("gnutls-drv.narinfo")
)

func readNarinfoVector(name string) string {
	b, err := os.ReadFile(filepath.Join("..", "..", "nix", "narinfo", "testdata", name))
	if err != nil {
		panic(err)
	}
	return string(b)
}

func mustParseNarinfo(t testing.TB, s string) *narinfo.NarInfo {
	t.Helper()
	ni, err := narinfo.Parse(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	return ni
}
