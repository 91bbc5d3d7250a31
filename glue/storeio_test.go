package glue

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/tvix-go/tvix/castore/blobstore"
	"github.com/tvix-go/tvix/castore/dirstore"
	"github.com/tvix-go/tvix/eval"
	"github.com/tvix-go/tvix/store/importer"
	"github.com/tvix-go/tvix/store/pathinfo"
)

func TestStoreIOServesCastorePaths(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "lib/deep"), 0o755)
	os.WriteFile(filepath.Join(src, "lib/deep/default.nix"), []byte("{ x = 1; }"), 0o644)
	os.Symlink("lib/deep", filepath.Join(src, "short"))
	os.Symlink("/nowhere/at/all", filepath.Join(src, "dangling"))
	st := importer.Store{Blobs: blobstore.NewMemory(), Dirs: dirstore.NewMemory(), PathInfo: pathinfo.NewMemory()}
	sp, _, err := st.AddRecursive(ctx, src, "src")
	if err != nil {
		t.Fatal(err)
	}
	sio := StoreIO{Base: eval.OSIO{}, Ctx: ctx, Blobs: st.Blobs, Dirs: st.Dirs, PathInfo: st.PathInfo}
	root := sp.String()
	for _, p := range []string{root + "/lib/deep/default.nix", root + "/short/default.nix"} {
		b, err := sio.ReadFile(p)
		if err != nil || string(b) != "{ x = 1; }" {
			t.Fatalf("ReadFile(%s) = %q, %v", p, b, err)
		}
	}
	if ok, err := sio.PathExists(root + "/dangling"); !ok || err != nil {
		t.Fatalf("PathExists(dangling symlink) = %v, %v (the link itself exists)", ok, err)
	}
	if ok, _ := sio.PathExists(root + "/lib/none"); ok {
		t.Fatal("PathExists(missing) = true")
	}
	if ft, _ := sio.FileType(root + "/short"); ft != eval.FileSymlink {
		t.Fatalf("FileType(short) = %v", ft)
	}
	ents, err := sio.ReadDir(root)
	if err != nil || len(ents) != 3 || ents[0].Name != "dangling" || ents[1].Type != eval.FileDirectory {
		t.Fatalf("ReadDir = %+v, %v", ents, err)
	}
	// Outside the store (or unknown store paths) it is the base IO.
	other := filepath.Join(t.TempDir(), "f")
	os.WriteFile(other, []byte("disk"), 0o644)
	if b, err := sio.ReadFile(other); err != nil || string(b) != "disk" {
		t.Fatalf("ReadFile(disk) = %q, %v", b, err)
	}
	if ok, _ := sio.PathExists("/nix/store/00000000000000000000000000000000-unknown"); ok {
		t.Fatal("unknown store path exists")
	}
}
