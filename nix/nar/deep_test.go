package nar_test

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/tvix-go/tvix/internal/growth"
	"github.com/tvix-go/tvix/nix/nar"
	"github.com/tvix-go/tvix/nix/nar/nartest"
)

// readDeep reads a NAR of depth nested directories and checks what the
// reader says of its deepest node.
func readDeep(t *testing.T, depth int) error {
	var buf bytes.Buffer
	if err := nartest.Nested(&buf, depth, "d"); err != nil {
		return err
	}
	r := nar.NewReader(&buf)
	nodes := 0
	for {
		n, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		nodes++
		if n.Kind == nar.KindFile {
			if n.Depth != depth {
				t.Errorf("file at depth %d, want %d", n.Depth, depth)
			}
			if want := strings.TrimSuffix(strings.Repeat("d/", depth), "/"); n.Path() != want {
				t.Errorf("file path has %d bytes, want %d", len(n.Path()), len(want))
			}
		}
	}
	if want := 2*depth + 1; nodes != want {
		t.Errorf("%d nodes, want %d", nodes, want)
	}
	return nil
}

// Nesting costs the reader memory linear in the depth: it used to copy
// the path for every node, which made a NAR 100,000 deep allocate 20 GB.
func TestReaderDeepNestingIsLinear(t *testing.T) {
	if err := readDeep(t, 100_000); err != nil {
		t.Fatal(err)
	}
	growth.Linear(t, "reading 4x as deep a NAR", 25_000, func(n int) error { return readDeep(t, n) })
}
