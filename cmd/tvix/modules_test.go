package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tvix-go/tvix/internal/testenv"
)

// TestNixpkgsModulesSh runs nixpkgs' lib/tests/modules.sh (the module
// system suite) with the tvix binary first on PATH as nix-instantiate. It
// calls nix-instantiate about 250 times with --eval-only --read-write-mode
// --show-trace --json, and matches error traces (addErrorContext lines)
// and values; C++ Nix 2.8 reports 249 Pass, 0 Fail. It takes about a
// minute on two busy cores; -short skips it.
func TestNixpkgsModulesSh(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the module system suite runs ~250 evaluations")
	}
	dir, _ := filepath.Abs("../../../shared/nixpkgs-lib/lib/tests")
	script := filepath.Join(dir, "modules.sh")
	if _, err := os.Stat(script); err != nil {
		testenv.Missing(t, "nixpkgs lib not found beside the repository: %v", err)
	}
	bash := testenv.Tool(t, "bash", "")
	bin := t.TempDir()
	if err := os.Symlink(tvixBinary(t), filepath.Join(bin, "nix-instantiate")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	// The script only reads its tree; its evaluations write toFile
	// results (--read-write-mode) into a private store.
	cmd := exec.Command(bash, script)
	cmd.Env = append(os.Environ(),
		"PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"XDG_DATA_HOME="+t.TempDir(),
		"NIX_PATH=",
	)
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	pass := regexp.MustCompile(`(?m)^(\d+) Pass$`).FindSubmatch(out)
	fail := regexp.MustCompile(`(?m)^(\d+) Fail$`).FindSubmatch(out)
	if err != nil || pass == nil || fail == nil || string(pass[1]) != "249" || string(fail[1]) != "0" {
		// The failures (each with its nix-instantiate command) lead the output.
		lines := strings.Split(string(out), "\n")
		if len(lines) > 200 {
			lines = append(lines[:200], "...")
		}
		t.Fatalf("modules.sh: %v; want 249 Pass, 0 Fail:\n%s", err, strings.Join(lines, "\n"))
	}
	t.Logf("modules.sh: 249 Pass, 0 Fail in %s", took.Round(time.Millisecond))
}
