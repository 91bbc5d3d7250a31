package glue

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/tvix-go/tvix/castore/blobstore"
	"github.com/tvix-go/tvix/castore/dirstore"
	"github.com/tvix-go/tvix/nix/nar"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/importer"
	"github.com/tvix-go/tvix/store/pathinfo"
)

// CastoreStore must land every path where ComputeStore says it is.
func TestCastoreStoreAgreesWithComputeStore(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "keep/sub"), 0o755)
	os.MkdirAll(filepath.Join(src, "drop"), 0o755)
	os.WriteFile(filepath.Join(src, "keep/sub/a"), []byte("a"), 0o644)
	os.WriteFile(filepath.Join(src, "keep/x.tmp"), []byte("tmp"), 0o755)
	os.WriteFile(filepath.Join(src, "drop/b"), []byte("b"), 0o644)
	os.Symlink("keep/sub/a", filepath.Join(src, "link"))
	filter := func(p, typ string) (bool, error) {
		return !strings.HasSuffix(p, "/drop") && !strings.HasSuffix(p, ".tmp"), nil
	}
	pis := pathinfo.NewMemory()
	cs := CastoreStore{importer.Store{Blobs: blobstore.NewMemory(), Dirs: dirstore.NewMemory(), PathInfo: pis}}
	var calls []string
	recording := func(p, typ string) (bool, error) { calls = append(calls, p); return filter(p, typ) }

	for _, tc := range []struct {
		name      string
		src       string
		recursive bool
		filter    Filter
	}{
		{"tree", src, true, nil},
		{"filtered", src, true, filter},
		{"flat", filepath.Join(src, "keep/sub/a"), false, nil},
		{"single-file", filepath.Join(src, "keep/x.tmp"), true, nil},
	} {
		want, err := ComputeStore{}.AddPath(ctx, tc.name, tc.src, tc.recursive, tc.filter)
		if err != nil {
			t.Fatal(err)
		}
		f := tc.filter
		if f != nil {
			calls = nil
			f = recording
		}
		got, err := cs.AddPath(ctx, tc.name, tc.src, tc.recursive, f)
		if err != nil || got != want {
			t.Fatalf("%s: castore store gave %s (%v), compute store %s", tc.name, got, err, want)
		}
		if _, err := pis.Get(ctx, got.Digest); err != nil {
			t.Fatalf("%s: no path info recorded: %v", tc.name, err)
		}
		if tc.filter != nil && (len(calls) == 0 || calls[0] != filepath.Join(src, "drop")) {
			t.Fatalf("%s: filter calls %v, want name order starting with drop", tc.name, calls)
		}
	}
	dep, _ := storepath.FromBasename("00bgd045z0d4icpbc2yyz4gx48ak44la-dep")
	want, _ := ComputeStore{}.AddText(ctx, "t.txt", []byte("x "+dep.String()), []storepath.StorePath{dep})
	got, err := cs.AddText(ctx, "t.txt", []byte("x "+dep.String()), []storepath.StorePath{dep})
	if err != nil || got != want {
		t.Fatalf("AddText = %s, %v; want %s", got, err, want)
	}
	// The PathInfo is the one the importer (nix-store --add's code path)
	// records for the same text.
	ref := importer.Store{Blobs: blobstore.NewMemory(), Dirs: dirstore.NewMemory(), PathInfo: pathinfo.NewMemory()}
	_, wantInfo, err := ref.AddText(ctx, "t.txt", []byte("x "+dep.String()), []storepath.StorePath{dep})
	if err != nil {
		t.Fatal(err)
	}
	gotInfo, err := pis.Get(ctx, got.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(gotInfo, wantInfo) {
		t.Fatalf("AddText recorded\n%v\nthe importer records\n%v", gotInfo, wantInfo)
	}
}

// fileNAR must agree with the NAR writer it stands in for.
func TestFileNARMatchesNARWriter(t *testing.T) {
	for _, contents := range []string{"", "x", "12345678", "Derive([(\"out\",\"/nix/store/…\",\"\",\"\")],[],[],\"x\")"} {
		var buf bytes.Buffer
		nw := nar.NewWriter(&buf)
		if err := nw.File(false, uint64(len(contents)), strings.NewReader(contents)); err != nil {
			t.Fatal(err)
		}
		if err := nw.Close(); err != nil {
			t.Fatal(err)
		}
		n, sum := fileNAR([]byte(contents))
		if n != uint64(buf.Len()) || sum != sha256.Sum256(buf.Bytes()) {
			t.Errorf("fileNAR(%q) = %d %x, NAR writer %d %x", contents, n, sum, buf.Len(), sha256.Sum256(buf.Bytes()))
		}
	}
}
