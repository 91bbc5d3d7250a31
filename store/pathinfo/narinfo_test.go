package pathinfo_test

import (
	"context"
	"strings"
	"testing"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/nix/narinfo"
	"github.com/tvix-go/tvix/nix/nixhash"
	"github.com/tvix-go/tvix/store/pathinfo"
	"github.com/tvix-go/tvix/store/storev1"
)

func TestPathInfoRoundTrip(t *testing.T) {
	root := &castorev1.Node{Node: &castorev1.Node_File{File: &castorev1.FileNode{Digest: castore.EmptyBlobDigest.Bytes()}}}
	for _, s := range []string{curlNarinfo, drvNarinfo} {
		ni := mustParseNarinfo(t, s)
		info, err := pathinfo.FromNarInfo(ni, root)
		if err != nil {
			t.Fatal(err)
		}
		if sp, err := pathinfo.Validate(info); err != nil || sp != ni.StorePath {
			t.Fatalf("Validate(ToPathInfo) = %v, %v", sp, err)
		}
		if ni.Deriver != nil && info.Narinfo.Deriver.Name+".drv" != ni.Deriver.Name {
			t.Errorf("deriver name %q kept its .drv", info.Narinfo.Deriver.Name)
		}
		back, err := pathinfo.ToNarInfo(info)
		if err != nil {
			t.Fatal(err)
		}
		back.URL, back.Compression, back.FileHash, back.FileSize = ni.URL, ni.Compression, ni.FileHash, ni.FileSize
		if back.String() != s {
			t.Errorf("round trip through PathInfo:\n%s\nwant\n%s", back.String(), s)
		}
	}
}

func TestCAEnum(t *testing.T) {
	for _, m := range []nixhash.Method{nixhash.Flat, nixhash.Recursive} {
		for _, a := range []nixhash.Algo{nixhash.MD5, nixhash.SHA1, nixhash.SHA256, nixhash.SHA512} {
			ca := nixhash.CA{Method: m, Hash: nixhash.Sum(a, []byte("x"))}
			p, err := pathinfo.CAToProto(ca)
			if err != nil {
				t.Fatal(err)
			}
			back, err := pathinfo.CAFromProto(p)
			if err != nil || back.String() != ca.String() {
				t.Errorf("%v: %v %v", ca, back, err)
			}
		}
	}
	p, _ := pathinfo.CAToProto(nixhash.CA{Method: nixhash.Recursive, Hash: nixhash.Sum(nixhash.SHA256, nil)})
	if p.Type != storev1.NARInfo_CA_NAR_SHA256 {
		t.Errorf("fixed:r:sha256 = %v", p.Type)
	}
	if _, err := pathinfo.CAFromProto(&storev1.NARInfo_CA{Type: storev1.NARInfo_CA_FLAT_SHA1, Digest: make([]byte, 32)}); err == nil || !strings.Contains(err.Error(), "want 20") {
		t.Errorf("wrong digest length: %v", err)
	}
	if _, err := pathinfo.CAFromProto(&storev1.NARInfo_CA{Type: 99}); err == nil {
		t.Error("unknown CA type accepted")
	}
}

func TestFromPathInfoErrors(t *testing.T) {
	root := &castorev1.Node{Node: &castorev1.Node_File{File: &castorev1.FileNode{Digest: castore.EmptyBlobDigest.Bytes()}}}
	good := func() *storev1.PathInfo {
		info, err := pathinfo.FromNarInfo(mustParseNarinfo(t, curlNarinfo), root)
		if err != nil {
			t.Fatal(err)
		}
		return info
	}
	for _, tc := range []struct {
		name, want string
		mod        func(*storev1.PathInfo)
	}{
		{"no narinfo", "no narinfo", func(i *storev1.PathInfo) { i.Narinfo = nil }},
		{"short sha256", "nar_sha256", func(i *storev1.PathInfo) { i.Narinfo.NarSha256 = i.Narinfo.NarSha256[:31] }},
		{"ref mismatch", "does not match digest", func(i *storev1.PathInfo) { i.References[0] = make([]byte, 20) }},
		{"ref count", "reference names", func(i *storev1.PathInfo) { i.References = i.References[1:] }},
		{"short sig", "invalid signature", func(i *storev1.PathInfo) { i.Narinfo.Signatures[0].Data = []byte{1} }},
		{"bad root name", "root node name", func(i *storev1.PathInfo) { i.Node = root }},
	} {
		info := good()
		tc.mod(info)
		if _, err := pathinfo.ToNarInfo(info); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

// Every malformed narinfo is refused before anything reaches the
// PathInfoService; the good one then goes in, so the flow is not vacuous.
func TestMalformedLeavesStoreUnchanged(t *testing.T) {
	ctx := context.Background()
	svc := pathinfo.NewMemory()
	root := &castorev1.Node{Node: &castorev1.Node_File{File: &castorev1.FileNode{Digest: castore.EmptyBlobDigest.Bytes()}}}
	put := func(text string) error {
		ni, err := narinfo.Parse(strings.NewReader(text))
		if err != nil {
			return err
		}
		info, err := pathinfo.FromNarInfo(ni, root)
		if err != nil {
			return err
		}
		_, err = svc.Put(ctx, info)
		return err
	}
	count := func() int {
		n := 0
		for _, err := range svc.List(ctx) {
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
		return n
	}
	bad := []string{
		strings.Replace(curlNarinfo, "NarSize: 196040", "NarSize: x", 1),
		strings.Replace(curlNarinfo, "StorePath: /nix/store/syd87l2rxw8cbsxmxl853h0r6pdwhwjr", "StorePath: /nix/store/syd87l2rxw8cbsxmxl853h0r6pdwhwj", 1),
		strings.Replace(curlNarinfo, "Sig: test1:519iiVLx", "Sig: test1:519iiVL", 1),
		curlNarinfo + "URL: again\n",
		"StorePath: /nix/store/syd87l2rxw8cbsxmxl853h0r6pdwhwjr-curl-7.82.0-bin\n",
	}
	for _, b := range bad {
		if err := put(b); err == nil {
			t.Fatalf("accepted:\n%s", b)
		}
	}
	if n := count(); n != 0 {
		t.Fatalf("%d path infos stored after malformed input", n)
	}
	if err := put(curlNarinfo); err != nil || count() != 1 {
		t.Fatalf("good narinfo: %v, %d stored", err, count())
	}
}
