//go:build linux

package evalcli

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// exeRSS is the resident kB of the test binary's read-only mappings.
func exeRSS(t *testing.T) int {
	exe, _ := os.Readlink("/proc/self/exe")
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Skip(err)
	}
	kb, in := 0, false
	for _, line := range strings.Split(string(b), "\n") {
		fs := strings.Fields(line)
		if len(fs) >= 5 && strings.Contains(fs[0], "-") {
			in = len(fs) == 6 && fs[5] == exe && (fs[1] == "r-xp" || fs[1] == "r--p")
			continue
		}
		if in && len(fs) >= 2 && fs[0] == "Rss:" {
			n, _ := strconv.Atoi(fs[1])
			kb += n
		}
	}
	return kb
}

// releaseImage leaves the program running (what it runs next faults
// back) with less of its image resident.
func TestReleaseImage(t *testing.T) {
	before := exeRSS(t)
	start := time.Now()
	releaseImage()
	took := time.Since(start)
	after := exeRSS(t)
	t.Logf("image resident %d -> %d kB in %v", before, after, took)
	if after >= before {
		t.Errorf("image resident %d kB before, %d kB after", before, after)
	}
	// and everything still works: evaluate something
	var out strings.Builder
	if rc := Run([]string{"--eval", "--strict", "-E", `builtins.toJSON (builtins.genList (i: { x = i; }) 3)`}, true, nil, strings.NewReader(""), &out, &out, func(string) string { return "" }); rc != 0 || !strings.Contains(out.String(), `[{\"x\":0},{\"x\":1},{\"x\":2}]`) {
		t.Errorf("after releaseImage: rc %d, %q", rc, out.String())
	}
}
