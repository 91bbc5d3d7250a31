package storepath

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
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
		if err := Check(s); err != nil {
			t.Errorf("Check(%q) = %v", s, err)
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
		if Check(s) == nil {
			t.Errorf("Check(%q) accepted it", s)
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

// The string-based and allocation-saving forms must give the paths (and
// the errors) of the general ones.
func TestFastFormsAgree(t *testing.T) {
	h := sha256.Sum256([]byte("x"))
	for _, tc := range []struct{ drv, out string }{
		{"hello-2.12", "out"}, {"hello-2.12", "dev"}, {"", "out"}, {"", "dev"},
		{"a b", "out"}, {"ok", "d v"}, {strings.Repeat("a", 211), "out"}, {strings.Repeat("a", 208), "bin"},
		{strings.Repeat("a", 207), "bin"}, {".hidden", "lib"},
	} {
		name := tc.drv
		if tc.out != "out" {
			name += "-" + tc.out
		}
		want, wantErr := MakeOutput(tc.out, h[:], name)
		got, err := OutputPath(tc.out, h[:], tc.drv)
		if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() || err == nil && got != want.String() {
			t.Errorf("OutputPath(%q, %q) = %q, %v; want %q, %v", tc.out, tc.drv, got, err, want.String(), wantErr)
		}
	}
	a, _ := Parse("/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-b")
	b, _ := Parse("/nix/store/zzbgd045z0d4icpbc2yyz4gx48ak44la-a")
	c, _ := Parse("/nix/store/zzbgd045z0d4icpbc2yyz4gx48ak44la-ab")
	sorted, err := MakeText("t", h[:], []StorePath{a, b, c})
	if err != nil {
		t.Fatal(err)
	}
	// the fingerprint lists the references sorted, whatever their order
	unsorted, _ := MakeText("t", h[:], []StorePath{c, a, b})
	paths, _ := MakeTextPaths("t", h[:], []string{a.String(), b.String(), c.String()})
	if unsorted != sorted || paths != sorted {
		t.Errorf("MakeText sorted %v, unsorted %v, MakeTextPaths %v", sorted, unsorted, paths)
	}
	many := make([]StorePath, 40) // a fingerprint longer than the stack buffer
	manyStr := make([]string, 40)
	var sb strings.Builder
	sb.WriteString("text")
	for i := range many {
		many[i] = StorePath{Digest: [DigestSize]byte{byte(i)}, Name: "p"}
		manyStr[i] = many[i].String()
	}
	slices.Sort(manyStr)
	for _, s := range manyStr {
		sb.WriteString(":" + s)
	}
	want, _ := Make(sb.String(), h[:], "t")
	got1, _ := MakeText("t", h[:], many)
	got2, _ := MakeTextPaths("t", h[:], manyStr)
	if got1 != want || got2 != want {
		t.Errorf("many refs: MakeText %v, MakeTextPaths %v, want %v", got1, got2, want)
	}
	if _, err := MakeTextPaths("t", h[:], []string{b.String(), a.String()}); err == nil {
		t.Errorf("MakeTextPaths accepted unsorted references")
	}
	if _, err := MakeTextPaths("t", h[:], []string{"/nix/store/x"}); err == nil {
		t.Errorf("MakeTextPaths accepted a bad reference")
	}
	if s := a.PrefixedString("="); s != "="+a.String() {
		t.Errorf("PrefixedString = %q", s)
	}
}

func FuzzCheck(f *testing.F) {
	f.Add("/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-net-tools")
	f.Add("/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44le-net-tools")
	f.Add("/nix/store/zz")
	f.Fuzz(func(t *testing.T, s string) {
		_, want := Parse(s)
		got := Check(s)
		if (got == nil) != (want == nil) || got != nil && got.Error() != want.Error() {
			t.Fatalf("Check(%q) = %v, Parse says %v", s, got, want)
		}
	})
}
