package closure_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/tvix-go/tvix/internal/growth"
	"github.com/tvix-go/tvix/nix/nar/nartest"
	"github.com/tvix-go/tvix/store/closure"
	"github.com/tvix-go/tvix/store/importer"
	"github.com/tvix-go/tvix/store/narcastore"
)

// addNested ingests a NAR depth directories deep, records it as a store
// path (which hashes its NAR) and verifies the store, with and without
// reading contents.
func addNested(depth int) error {
	ctx := context.Background()
	s := memoryStore()
	var b bytes.Buffer
	if err := nartest.Nested(&b, depth, "d"); err != nil {
		return err
	}
	node, _, _, err := narcastore.Ingest(ctx, &b, s.Blobs, s.Dirs)
	if err != nil {
		return err
	}
	im := importer.Store{Blobs: s.Blobs, Dirs: s.Dirs, PathInfo: s.PathInfos}
	if _, _, err := im.AddNode(ctx, node, "nested"); err != nil {
		return err
	}
	for _, contents := range []bool{false, true} {
		var problems []string
		rep, err := closure.Verify(ctx, s, contents, func(m string) { problems = append(problems, m) })
		if err != nil {
			return err
		}
		if rep.Paths != 1 || rep.Problems != 0 || len(problems) != 0 {
			return fmt.Errorf("verify (contents %v): %s %v", contents, rep, problems)
		}
	}
	return nil
}

// Verifying a path 100,000 directories deep is linear in its depth.
func TestVerifyDeepNesting(t *testing.T) {
	if err := addNested(100_000); err != nil {
		t.Fatal(err)
	}
	growth.Linear(t, "adding and verifying a path 4x as deep", 25_000, addNested)
}
