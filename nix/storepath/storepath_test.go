package storepath

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/tvix-go/tvix/nix/nixbase32"
)

func TestMakeTextVectors(t *testing.T) {
	h := sha256.Sum256([]byte("bar"))
	foo, err := MakeText("foo", h[:], nil)
	if err != nil || foo.String() != "/nix/store/vxjiwkjkn7x4079qvh1jkl5pn05j2aw0-foo" {
		t.Fatalf("toFile foo bar = %v, %v", foo, err)
	}
	h2 := sha256.Sum256([]byte(foo.String()))
	baz, err := MakeText("baz", h2[:], []StorePath{foo})
	if err != nil || baz.String() != "/nix/store/5xd714cbfnkz02h2vbsj4fm03x3f15nf-baz" {
		t.Fatalf("toFile baz = %v, %v", baz, err)
	}
}

func TestMakeSourceAndFixedVectors(t *testing.T) {
	nar, _ := nixbase32.DecodeString("1xqkzcb3909fp07qngljr4wcdnrh1gdam1m2n29i6hhrxlmkgkv1")
	ref, err := FromBasename("dxwkwjzdaq7ka55pkk252gh32bgpmql4-foo")
	if err != nil {
		t.Fatal(err)
	}
	p, err := MakeSource("baz", nar, []StorePath{ref}, false)
	if err != nil || p.Basename() != "s89y431zzhmdn3k8r96rvakryddkpv2v-baz" {
		t.Fatalf("source path = %v, %v", p, err)
	}
	sha1, _ := hex.DecodeString("0beec7b5ea3f0fdbc95d0dd47f3c5bc275da8a33")
	p, err = MakeFixedOutput("bar", true, "sha1", sha1, nil)
	if err != nil || p.Basename() != "mp57d33657rf34lzvlbpfa1gjfv5gmpg-bar" {
		t.Fatalf("fixed sha1 path = %v, %v", p, err)
	}
}

func TestParse(t *testing.T) {
	good := []string{
		"/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-net-tools-1.60_p20170221182432",
		"/nix/store/00000000000000000000000000000000-dummy",
		"/nix/store/00000000000000000000000000000000-.gitignore",
		"/nix/store/00000000000000000000000000000000-" + strings.Repeat("a", 211),
	}
	for _, s := range good {
		p, err := Parse(s)
		if err != nil || p.String() != s {
			t.Errorf("Parse(%q) = %v, %v", s, p, err)
		}
	}
	bad := []string{
		"", "/nix/store/", "/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la", "/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-",
		"/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44lae-foo", "/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44l-foo",
		"/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-fo o", "/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-foo/bar",
		"/nix/stor/00bgd045z0d4icpbc2yyz4gx48ak44la-foo", "/nix/store/00000000000000000000000000000000-" + strings.Repeat("a", 212),
	}
	for _, s := range bad {
		if p, err := Parse(s); err == nil {
			t.Errorf("Parse(%q) = %v, want error", s, p)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-net-tools")
	f.Add("/nix/store/zz")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Parse(s)
		if err == nil && p.String() != s {
			t.Fatalf("Parse(%q) accepted but prints %q", s, p.String())
		}
	})
}
