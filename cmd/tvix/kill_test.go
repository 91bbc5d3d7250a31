package main

import (
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestKill9Import kills `tvix store import` at random points until it has
// been killed mid-way 20 times; after each kill `tvix store verify
// --check-contents` must find the store sound, and the import must
// succeed when run again.
func TestKill9Import(t *testing.T) {
	data := t.TempDir()
	env := []string{"XDG_DATA_HOME=" + data}
	rng := rand.New(rand.NewSource(14))
	tree := func(i int) string {
		dir := filepath.Join(t.TempDir(), fmt.Sprintf("tree-%d", i))
		for j := range 6 {
			b := make([]byte, 1<<20+rng.Intn(1<<20))
			rng.Read(b)
			p := filepath.Join(dir, fmt.Sprintf("d%d", j%2), fmt.Sprintf("big-%d", j))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		for j := range 100 {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("small-%d", j)), []byte(fmt.Sprintf("%d/%d %x", i, j, rng.Int63())), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	killed, runs := 0, 0
	for i := 0; killed < 20 && i < 40; i++ {
		runs++
		src := tree(i)
		cmd := exec.Command(tvixBinary(t), "store", "import", src)
		cmd.Env = append(os.Environ(), env...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.Intn(200)) * time.Millisecond)
		if cmd.Process.Kill() == nil {
			if err := cmd.Wait(); err != nil && strings.Contains(err.Error(), "killed") {
				killed++
			}
		}
		if out, stderr, err := run(t, env, "store", "verify", "--check-contents"); err != nil {
			t.Fatalf("verify after kill %d: %v\n%s%s", i, err, out, stderr)
		}
		if out, stderr, err := run(t, env, "store", "import", src); err != nil {
			t.Fatalf("import again after kill %d: %v\n%s%s", i, err, out, stderr)
		}
	}
	if killed < 20 {
		t.Fatalf("only %d of %d imports were killed before finishing; the kill points are too late", killed, runs)
	}
	out, stderr, err := run(t, env, "store", "verify", "--check-contents")
	if err != nil || !strings.Contains(out, fmt.Sprintf("checked %d paths", runs)) || !strings.Contains(out, ": 0 problems") {
		t.Fatalf("final verify: %v\n%s%s", err, out, stderr)
	}
	t.Logf("%d of %d imports killed mid-way", killed, runs)
}
