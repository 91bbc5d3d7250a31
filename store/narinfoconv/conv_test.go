package narinfoconv

import (
	"strings"
	"testing"

	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/store/narinfo"
	"github.com/tvix-go/tvix/store/nixhash"
)

const base = `StorePath: /nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-net-tools-1.60_p20170221182432
URL: nar/1094wph9z4nwlgvsd53abfz8i117ykiv5dwnq9nnhz846s7xqd7d.nar.xz
Compression: xz
FileHash: sha256:1094wph9z4nwlgvsd53abfz8i117ykiv5dwnq9nnhz846s7xqd7d
FileSize: 114980
NarHash: sha256:0lxjvvpr59c2mdram7ympy5ay741f180kv3349hvfc3f8nrmbqf6
NarSize: 464152
References: 7gx4kiv5m0i7d7qkixq2cwzbr10lvxwc-glibc-2.27 00bgd045z0d4icpbc2yyz4gx48ak44la-net-tools-1.60_p20170221182432
Deriver: 7sng5dpa0ik2la6s9n9ag5a1iggqqzlm-net-tools-1.60_p20170221182432.drv
Sig: cache.nixos.org-1:sn5s/RrqEI+YG6/PjwdbPjcAC7rcta7sJU4mFOawGvJBLsWkyLtBrT2EuFt/LJjWkTZ+ZWOI9NTtjo/woMdvAg==
`

func TestRoundTrip(t *testing.T) {
	root := &castorev1.Node{Node: &castorev1.Node_Symlink{Symlink: &castorev1.SymlinkNode{Target: []byte("/x")}}}
	for _, ca := range []string{"", "fixed:r:sha256:0lxjvvpr59c2mdram7ympy5ay741f180kv3349hvfc3f8nrmbqf6",
		"text:sha256:0lxjvvpr59c2mdram7ympy5ay741f180kv3349hvfc3f8nrmbqf6", "fixed:sha1:0beec7b5ea3f0fdbc95d0dd47f3c5bc275da8a33",
		"fixed:r:sha1:0beec7b5ea3f0fdbc95d0dd47f3c5bc275da8a33", "fixed:md5:d41d8cd98f00b204e9800998ecf8427e"} {
		in := base
		if ca != "" {
			// Nix prints digests in nixbase32; the hex vectors normalise.
			c, err := nixhash.ParseCA(ca)
			if err != nil {
				t.Fatal(err)
			}
			in += "CA: " + c.String() + "\n"
		}
		ni, err := narinfo.Parse(strings.NewReader(in))
		if err != nil {
			t.Fatal(err)
		}
		info, err := ToPathInfo(ni, root)
		if err != nil {
			t.Fatalf("CA %q: %v", ca, err)
		}
		if got := string(info.GetNode().GetSymlink().GetName()); got != ni.StorePath.Basename() {
			t.Fatalf("root named %q", got)
		}
		if d := info.GetNarinfo().GetDeriver(); d.GetName() != "net-tools-1.60_p20170221182432" {
			t.Fatalf("deriver %v: want the name without .drv", d)
		}
		back, err := ToNarInfo(info)
		if err != nil {
			t.Fatal(err)
		}
		// Only the file's own fields (URL, compression, file hash/size) are lost.
		back.URL, back.Compression, back.FileHash, back.FileSize = ni.URL, ni.Compression, ni.FileHash, ni.FileSize
		if back.String() != in {
			t.Fatalf("round trip of CA %q:\n%s\nwant\n%s", ca, back.String(), in)
		}
	}
}
