package castore_test

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castoretest"
	"github.com/tvix-go/tvix/castore/castorev1"
)

func TestDirectoryVectors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		dir    *castorev1.Directory
		digest string
		size   uint64
	}{
		{"A", castoretest.DirectoryA, "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262", 0},
		{"B", castoretest.DirectoryB, "8701f4722d8dae7f2c40fa003331b8437a3825f9e1bfd3a77998c64cc226b9cc", 1},
		{"C", castoretest.DirectoryC, "78eb200ae0cc95d4ea954655fbcf91e285013a261310e161927f2401d2bca803", 2},
		{"D", castoretest.DirectoryD, "99922a5c1801805287a647af73bca0ed7352a5f7f373e54992795bcc4a235213", 3},
		{"WithKeep", castoretest.DirectoryWithKeep, "8b5b5d642b646bb8ed504b0862c39413e87e57491497de7bd075953f7b83810e", 1},
		{"Complicated", castoretest.DirectoryComplicated, "3f951a15afd586fb3121ef4d13d582e811ce0e5a7f21c0497fd87490e9e2355a", 4},
	} {
		d := castore.DirectoryDigest(tc.dir)
		if got := hex.EncodeToString(d[:]); got != tc.digest {
			t.Errorf("%s: digest %s, want %s", tc.name, got, tc.digest)
		}
		if size, ok := castore.DirectorySize(tc.dir); !ok || size != tc.size {
			t.Errorf("%s: size %d (ok %v), want %d", tc.name, size, ok, tc.size)
		}
		if err := castore.ValidateDirectory(tc.dir); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

func TestValidateDirectoryRejects(t *testing.T) {
	dg := castore.EmptyBlobDigest.Bytes()
	file := func(name string) *castorev1.FileNode { return &castorev1.FileNode{Name: []byte(name), Digest: dg} }
	dir := func(name string) *castorev1.DirectoryNode {
		return &castorev1.DirectoryNode{Name: []byte(name), Digest: dg}
	}
	link := func(name, target string) *castorev1.SymlinkNode {
		return &castorev1.SymlinkNode{Name: []byte(name), Target: []byte(target)}
	}
	for _, tc := range []struct {
		dir  *castorev1.Directory
		want string
	}{
		{&castorev1.Directory{Files: []*castorev1.FileNode{file("")}}, "empty name"},
		{&castorev1.Directory{Files: []*castorev1.FileNode{file(".")}}, "name is . or .."},
		{&castorev1.Directory{Directories: []*castorev1.DirectoryNode{dir("..")}}, "name is . or .."},
		{&castorev1.Directory{Files: []*castorev1.FileNode{file("a/b")}}, "contains /"},
		{&castorev1.Directory{Files: []*castorev1.FileNode{file("a\x00b")}}, "contains NUL"},
		{&castorev1.Directory{Files: []*castorev1.FileNode{file(strings.Repeat("x", 256))}}, "longer than 255"},
		{&castorev1.Directory{Files: []*castorev1.FileNode{file("b"), file("a")}}, "not sorted"},
		{&castorev1.Directory{Files: []*castorev1.FileNode{file("a"), file("a")}}, "duplicate name"},
		{&castorev1.Directory{Files: []*castorev1.FileNode{file("a")}, Symlinks: []*castorev1.SymlinkNode{link("a", "x")}}, "more than one node"},
		{&castorev1.Directory{Directories: []*castorev1.DirectoryNode{dir("a")}, Files: []*castorev1.FileNode{file("a")}}, "more than one node"},
		{&castorev1.Directory{Files: []*castorev1.FileNode{{Name: []byte("a"), Digest: []byte{1, 2}}}}, "digest has 2 bytes"},
		{&castorev1.Directory{Directories: []*castorev1.DirectoryNode{{Name: []byte("a"), Digest: make([]byte, 33)}}}, "digest has 33 bytes"},
		{&castorev1.Directory{Symlinks: []*castorev1.SymlinkNode{link("a", "")}}, "empty symlink target"},
		{&castorev1.Directory{Symlinks: []*castorev1.SymlinkNode{link("a", "x\x00")}}, "target contains NUL"},
		{&castorev1.Directory{Directories: []*castorev1.DirectoryNode{{Name: []byte("a"), Digest: dg, Size: ^uint64(0)}}}, "overflows"},
	} {
		err := castore.ValidateDirectory(tc.dir)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ValidateDirectory(%v) = %v, want error containing %q", tc.dir, err, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), castore.DirectoryDigest(tc.dir).String()) {
			t.Errorf("error %q does not name the directory digest", err)
		}
	}
}

func TestParseDigest(t *testing.T) {
	d := castore.HashBlob([]byte("Hello World!"))
	for _, s := range []string{d.String(), d.Hex(), strings.TrimPrefix(d.String(), "b3:")} {
		got, err := castore.ParseDigest(s)
		if err != nil || got != d {
			t.Errorf("ParseDigest(%q) = %s, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "b3:", "abc", strings.Repeat("0", 63)} {
		if _, err := castore.ParseDigest(s); err == nil {
			t.Errorf("ParseDigest(%q) accepted", s)
		}
	}
}

func FuzzValidateDirectory(f *testing.F) {
	for _, d := range []*castorev1.Directory{castoretest.DirectoryComplicated, castoretest.DirectoryD} {
		f.Add(marshal(d))
	}
	f.Add([]byte{0x0a, 0x25, 0x0a, 0x01, 'a', 0x12, 0x20})
	f.Fuzz(func(t *testing.T, raw []byte) {
		var d castorev1.Directory
		if err := unmarshal(raw, &d); err != nil {
			return
		}
		// Must never panic; accepted directories must have a size.
		if castore.ValidateDirectory(&d) == nil {
			if _, ok := castore.DirectorySize(&d); !ok {
				t.Fatal("valid directory without size")
			}
		}
	})
}
