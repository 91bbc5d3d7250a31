package narcastore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/tvix-go/tvix/internal/nixtest"
	"github.com/tvix-go/tvix/nix/nar"
	"github.com/tvix-go/tvix/nix/nixbase32"
	"github.com/tvix-go/tvix/nix/storepath"
)

// corpus builds the trees the comparison runs over, each under dir/<name>,
// and returns their names. Contents are pseudo-random but fixed.
func corpus(t testing.TB, dir string) []string {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	data := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	file := func(p string, b []byte, exec bool) {
		mode := os.FileMode(0o644)
		if exec {
			mode = 0o755
		}
		must(os.MkdirAll(filepath.Dir(p), 0o755))
		must(os.WriteFile(p, b, mode))
		must(os.Chmod(p, mode))
	}
	link := func(p, target string) {
		must(os.MkdirAll(filepath.Dir(p), 0o755))
		must(os.Symlink(target, p))
	}

	// Nested directories with every node kind and awkward names.
	n := filepath.Join(dir, "tree-nested")
	file(filepath.Join(n, "a", "b", "c", "deep.txt"), []byte("deep\n"), false)
	file(filepath.Join(n, "bin", "tool"), []byte("#!/bin/sh\necho hi\n"), true)
	file(filepath.Join(n, "empty-file"), nil, false)
	file(filepath.Join(n, "empty-exec"), nil, true)
	must(os.MkdirAll(filepath.Join(n, "empty-dir"), 0o755))
	must(os.MkdirAll(filepath.Join(n, "a", "empty-sub"), 0o755))
	link(filepath.Join(n, "rel-link"), "a/b/c/deep.txt")
	link(filepath.Join(n, "dangling"), "does/not/exist")
	link(filepath.Join(n, "abs-link"), "/nix/store/00000000000000000000000000000000-somewhereelse")
	link(filepath.Join(n, "dir-link"), "a")
	file(filepath.Join(n, "name with spaces"), []byte("spaces"), false)
	file(filepath.Join(n, "ünïcødé-名前"), []byte("unicode"), false)
	file(filepath.Join(n, "key=value"), []byte("eq"), false)
	file(filepath.Join(n, ".hidden"), []byte("dot"), false)
	file(filepath.Join(n, "A-upper"), []byte("sorts before a"), false)
	file(filepath.Join(n, "a-lower"), []byte("after A"), false)
	file(filepath.Join(n, "a.b"), []byte("'.' < '/' < '0'"), false)
	file(filepath.Join(n, "a0"), []byte("after a.b"), false)

	// File sizes around the 8-byte padding and 4 KiB page boundaries.
	s := filepath.Join(dir, "tree-sizes")
	for _, size := range []int{0, 1, 7, 8, 9, 4095, 4096, 4097, 10 << 20} {
		file(filepath.Join(s, fmt.Sprintf("f%08d", size)), data(size), size%2 == 1)
	}

	// 100 levels of nesting.
	p := filepath.Join(dir, "tree-deep")
	for i := 0; i < 100; i++ {
		p = filepath.Join(p, fmt.Sprintf("d%d", i))
	}
	file(filepath.Join(p, "bottom"), []byte("bottom"), false)

	// Roots that are not directories.
	file(filepath.Join(dir, "root-file"), []byte("Hello World!"), false)
	file(filepath.Join(dir, "root-exec"), data(4097), true)
	file(filepath.Join(dir, "root-empty"), nil, false)
	link(filepath.Join(dir, "root-dangling"), "/nonexistent/target")

	// A wide directory.
	w := filepath.Join(dir, "tree-wide")
	for i := 0; i < 300; i++ {
		file(filepath.Join(w, fmt.Sprintf("%x", sha256.Sum256([]byte{byte(i), byte(i >> 8)}))[:12]), data(rng.IntN(200)), rng.IntN(4) == 0)
	}
	return []string{"tree-nested", "tree-sizes", "tree-deep", "tree-wide", "root-file", "root-exec", "root-empty", "root-dangling"}
}

// TestAgainstNix compares, for every tree of the corpus, our NAR bytes,
// NAR sha256, NAR size and store path with nix-store --dump, nix-hash and
// nix-store --add, and checks that ingest + render reproduces the NAR.
func TestAgainstNix(t *testing.T) {
	nixtest.Require(t)
	ctx := context.Background()
	dir := t.TempDir()
	for _, name := range corpus(t, dir) {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			var ours bytes.Buffer
			if err := nar.DumpPath(&ours, path); err != nil {
				t.Fatal(err)
			}
			theirs := nixtest.Run(t, "nix-store", "--dump", path)
			if !bytes.Equal(ours.Bytes(), theirs) {
				t.Fatalf("NAR differs from nix-store --dump: %d vs %d bytes, first difference at %d",
					ours.Len(), len(theirs), firstDiff(ours.Bytes(), theirs))
			}
			sum := sha256.Sum256(ours.Bytes())
			if got, want := nixbase32.EncodeToString(sum[:]), nixtest.Text(t, "nix-hash", "--type", "sha256", "--base32", path); got != want {
				t.Errorf("NAR sha256 %s, nix-hash says %s", got, want)
			}

			blobs, dirs := newMemBlobs(), newCountingDirs()
			root, size, isum, err := Ingest(ctx, bytes.NewReader(theirs), blobs, dirs)
			if err != nil {
				t.Fatal(err)
			}
			if size != uint64(len(theirs)) || isum != sum {
				t.Fatalf("Ingest: size %d sha256 %x, want %d %x", size, isum, len(theirs), sum)
			}
			var rendered bytes.Buffer
			if err := Render(ctx, &rendered, root, blobs, dirs); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(rendered.Bytes(), theirs) {
				t.Fatalf("Render differs from nix-store --dump at byte %d", firstDiff(rendered.Bytes(), theirs))
			}
			csize, csum, err := CalculateNAR(ctx, root, blobs, dirs)
			if err != nil || csize != size || csum != sum {
				t.Fatalf("CalculateNAR = %d %x %v", csize, csum, err)
			}

			sp, err := storepath.MakeSource(name, sum[:], nil, false)
			if err != nil {
				t.Fatal(err)
			}
			if got := nixtest.Text(t, "nix-store", "--add", path); got != sp.String() {
				t.Errorf("store path %s, nix-store --add says %s", sp, got)
			}
			t.Logf("%s: NAR %d bytes, sha256:%s, %s", name, size, nixbase32.EncodeToString(sum[:]), sp)
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestNixRejectsWhatWeReject feeds our malformed NARs to nix-store
// --restore as a sanity check that the rules are Nix's. The one exception
// is order: Nix 2.8 resets its "previous name" for every entry, so it
// restores unsorted entries, but the tree it writes dumps to a different
// NAR; a NAR whose bytes do not round-trip has no stable hash, so we
// refuse it (as Tvix and newer Nix do).
func TestNixRejectsWhatWeReject(t *testing.T) {
	nixtest.Require(t)
	tok := func(ss ...string) []byte {
		var b []byte
		for _, s := range ss {
			var l [8]byte
			l[0] = byte(len(s))
			b = append(b, l[:]...)
			b = append(b, s...)
			b = append(b, make([]byte, (8-len(s)%8)%8)...)
		}
		return b
	}
	ent := func(name string) []string {
		return []string{"entry", "(", "name", name, "node", "(", "type", "symlink", "target", "t", ")", ")"}
	}
	dir := func(entries ...[]string) []byte {
		ss := []string{"nix-archive-1", "(", "type", "directory"}
		for _, e := range entries {
			ss = append(ss, e...)
		}
		return tok(append(ss, ")")...)
	}
	for _, tc := range []struct {
		name       string
		in         []byte
		nixAccepts bool
	}{
		{"bad magic", tok("nix-archive-2", "(", "type", "regular", "contents", "", ")"), false},
		{"unsorted", dir(ent("b"), ent("a")), true},
		{"duplicate", dir(ent("a"), ent("a")), false},
		{"dotdot", dir(ent("..")), false},
		{"slash", dir(ent("a/b")), false},
		{"truncated", tok("nix-archive-1", "(", "type", "regular", "contents"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, _, err := Ingest(context.Background(), bytes.NewReader(tc.in), newMemBlobs(), newCountingDirs()); err == nil {
				t.Fatal("we accept it")
			}
			target := filepath.Join(t.TempDir(), "out")
			cmd := fmt.Sprintf("nix-store --restore %s", target)
			_, err := nixtest.RunInput(tc.in, "nix-store", "--restore", target)
			switch {
			case err == nil && !tc.nixAccepts:
				t.Fatalf("%s accepted it", cmd)
			case err != nil && tc.nixAccepts:
				t.Fatalf("%s: %v (expected Nix 2.8 to accept it)", cmd, err)
			case err == nil:
				if again := nixtest.Run(t, "nix-store", "--dump", target); bytes.Equal(again, tc.in) {
					t.Fatal("Nix restored it to a tree with the same NAR; then it is canonical and we must accept it")
				}
			}
		})
	}
}
