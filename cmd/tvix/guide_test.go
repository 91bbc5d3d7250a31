package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tvix-go/tvix/internal/nixtest"
	"github.com/tvix-go/tvix/internal/testenv"
)

// guideBlock is one ```sh test block of a guide and the lines its output
// must contain (the ```text expect block after it).
type guideBlock struct {
	line   int
	script string
	expect []string
}

// guideBlocks reads the blocks a guide marks for testing, as written.
func guideBlocks(md string) ([]guideBlock, error) {
	var blocks []guideBlock
	var cur *strings.Builder
	kind, start := "", 0
	sc := bufio.NewScanner(strings.NewReader(md))
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		switch {
		case cur == nil && strings.HasPrefix(l, "```"):
			kind, start, cur = strings.TrimSpace(strings.TrimPrefix(l, "```")), n, &strings.Builder{}
		case cur != nil && strings.TrimSpace(l) == "```":
			switch kind {
			case "sh test":
				blocks = append(blocks, guideBlock{line: start, script: cur.String()})
			case "text expect":
				if len(blocks) == 0 || blocks[len(blocks)-1].expect != nil {
					return nil, fmt.Errorf("line %d: an expect block follows no sh test block", start)
				}
				for _, e := range strings.Split(strings.TrimSpace(cur.String()), "\n") {
					blocks[len(blocks)-1].expect = append(blocks[len(blocks)-1].expect, e)
				}
			}
			cur = nil
		case cur != nil:
			cur.WriteString(l + "\n")
		}
	}
	if cur != nil {
		return nil, fmt.Errorf("line %d: block not closed", start)
	}
	return blocks, sc.Err()
}

func TestGuideBlocksParse(t *testing.T) {
	md := "x\n```sh test\necho a\necho b\n```\n```text expect\na\n```\n```sh\nnot run\n```\n```sh test\necho c\n```\n"
	b, err := guideBlocks(md)
	if err != nil || len(b) != 2 || b[0].script != "echo a\necho b\n" || len(b[0].expect) != 1 || b[0].expect[0] != "a" ||
		b[1].script != "echo c\n" || b[1].expect != nil || b[0].line != 2 {
		t.Fatalf("blocks %+v, %v", b, err)
	}
	if _, err := guideBlocks("```text expect\nx\n```\n"); err == nil {
		t.Error("an expect block without a command block was accepted")
	}
}

// TestGettingStarted runs docs/getting-started.md's commands as written:
// one bash, in the repository, with a fresh HOME, every block in order.
// The mount and MicroVM flows are real.
func TestGettingStarted(t *testing.T) {
	nixtest.Require(t)
	testenv.FUSE(t)
	testenv.Root(t, "the guide mounts over /nix/store in a private mount namespace")
	testenv.Tool(t, "qemu-system-x86_64", "qemu-system-x86")
	testenv.Tool(t, "busybox", "busybox-static")
	testenv.Tool(t, "patchelf", "patchelf")
	testenv.Tool(t, "unshare", "util-linux")
	testenv.Tool(t, "bwrap", "bubblewrap")
	md, err := os.ReadFile("../../docs/getting-started.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := guideBlocks(string(md))
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) < 5 {
		t.Fatalf("only %d blocks marked sh test", len(blocks))
	}
	home := t.TempDir()
	var script strings.Builder
	// What a user's shell does: stop at a failing command (not a failing
	// pipe stage: `| head` is fine), and leave nothing running behind.
	script.WriteString("set -eu\ntrap 'st=$?; set +e; kill $(jobs -p) 2>/dev/null; wait; umount -l ~/nix-store 2>/dev/null; exit $st' EXIT\n")
	for i, b := range blocks {
		fmt.Fprintf(&script, "echo '@@block %d@@'\n%s", i, b.script)
	}
	script.WriteString("echo '@@end@@'\n")
	cmd := exec.Command("bash", "-c", script.String())
	cmd.Dir = "../.."
	env := []string{"HOME=" + home, "XDG_DATA_HOME=" + filepath.Join(home, ".local/share"), "GOTOOLCHAIN=local"}
	// The fresh HOME must not cost a cold build cache and module download.
	for _, v := range []string{"GOCACHE", "GOMODCACHE", "GOPATH", "GOFLAGS", "GOPROXY"} {
		out, err := exec.Command("go", "env", v).Output()
		if err != nil {
			t.Fatal(err)
		}
		env = append(env, v+"="+strings.TrimSpace(string(out)))
	}
	cmd.Env = append(withoutEnv(os.Environ(), "TVIX_STORE", "XDG_DATA_HOME", "HOME"), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err = cmd.Run()
	t.Logf("guide ran in %s", time.Since(start).Round(time.Second))
	parts := strings.Split(out.String(), "@@block ")
	for i, b := range blocks {
		marker := fmt.Sprintf("%d@@\n", i)
		var got string
		for _, p := range parts {
			if strings.HasPrefix(p, marker) {
				got = strings.TrimPrefix(p, marker)
			}
		}
		if i+1 == len(blocks) {
			got, _, _ = strings.Cut(got, "@@end@@")
		}
		for _, e := range b.expect {
			if !strings.Contains(got, e) {
				t.Errorf("getting-started.md:%d: output lacks %q:\n%s", b.line, e, got)
			}
		}
	}
	if err != nil || !strings.Contains(out.String(), "@@end@@") {
		t.Fatalf("the guide's commands failed: %v\n%s", err, out.String())
	}
}

func withoutEnv(env []string, names ...string) []string {
	var out []string
	for _, e := range env {
		keep := true
		for _, n := range names {
			if strings.HasPrefix(e, n+"=") {
				keep = false
			}
		}
		if keep {
			out = append(out, e)
		}
	}
	return out
}
