package nixhash

import (
	"strings"
	"testing"
)

// Vectors from `nix-hash --to-base32` and `nix hash to-sri` (Nix 2.8) for
// the digests of "abc".
var abcVectors = []struct {
	algo           Algo
	hex, nb32, sri string
}{
	{MD5, "900150983cd24fb0d6963f7d28e17f72", "3jgzhjhz9zjvbb0kyj7jc500ch", "md5-kAFQmDzST7DWlj99KOF/cg=="},
	{SHA1, "a9993e364706816aba3e25717850c26c9cd0d89d", "kpcd173cq987hw957sx6m0868wv3x6d9", "sha1-qZk+NkcGgWq6PiVxeFDCbJzQ2J0="},
	{SHA256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s", "sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="},
	{SHA512, "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
		"2gs8k559z4rlahfx0y688s49m2vvszylcikrfinm30ly9rak69236nkam5ydvly1ai7xac99vxfc4ii84hawjbk876blyk1jfhkbbyx",
		"sha512-3a81oZNherrMQXNJriBBMRLm+k6JqX6iCp7u5ktV05ohkpkqJ0/BqDa6PCOj/uu9RU1EI2Q86A4qmslPpUyknw=="},
}

func TestVectors(t *testing.T) {
	for _, v := range abcVectors {
		t.Run(v.algo.String(), func(t *testing.T) {
			want := Sum(v.algo, []byte("abc"))
			if want.Hex() != v.hex || want.Nix32() != v.nb32 || want.SRI() != v.sri {
				t.Fatalf("Sum(abc) prints %s %s %s, want %s %s %s", want.Hex(), want.Nix32(), want.SRI(), v.hex, v.nb32, v.sri)
			}
			b64 := strings.TrimPrefix(v.sri, v.algo.String()+"-")
			for _, s := range []string{
				v.algo.String() + ":" + v.hex, v.algo.String() + ":" + v.nb32, v.algo.String() + ":" + b64, v.sri,
			} {
				h, err := Parse(s)
				if err != nil || !h.Equal(want) {
					t.Errorf("Parse(%q) = %v, %v; want %v", s, h, err, want)
				}
			}
			for _, s := range []string{v.hex, v.nb32, b64, v.sri, v.algo.String() + ":" + v.nb32} {
				h, err := ParseAs(v.algo, s)
				if err != nil || !h.Equal(want) {
					t.Errorf("ParseAs(%v, %q) = %v, %v", v.algo, s, h, err)
				}
			}
			if got := want.String(); got != v.algo.String()+":"+v.nb32 {
				t.Errorf("String = %q", got)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "want <algo>:<digest>"},
		{"sha256", "want <algo>:<digest>"},
		{"sha3:abcd", "unknown hash algorithm"},
		{"sha256:abcd", "digest has 4 characters"},
		{"sha256:" + strings.Repeat("g", 64), "invalid byte"},
		{"sha256:" + strings.Repeat("e", 52), "invalid character"},
		{"sha256-" + abcVectors[2].hex, "digest decodes to 48 bytes, want 32"},
		{"sha256-" + strings.Repeat("!", 44), "invalid character '!' in base64"},
		{"md5:" + abcVectors[2].hex, "digest has 64 characters"},
		// nixbase32 with bits set beyond the digest.
		{"md5:zjgzhjhz9zjvbb0kyj7jc500ch", "non-zero padding"},
	} {
		if _, err := Parse(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) error = %v, want it to mention %q", tc.in, err, tc.want)
		}
	}
	if _, err := ParseAs(SHA256, "sha1:"+abcVectors[1].hex); err == nil || !strings.Contains(err.Error(), "want sha256") {
		t.Errorf("ParseAs mismatched algo: %v", err)
	}
	if _, err := New(SHA256, make([]byte, 20)); err == nil {
		t.Error("New accepted a 20-byte sha256")
	}
}

func TestCA(t *testing.T) {
	sha256abc := "sha256:" + abcVectors[2].nb32
	for _, tc := range []struct {
		in, out string
		m       Method
	}{
		{"fixed:r:" + sha256abc, "", Recursive},
		{"fixed:" + sha256abc, "", Flat},
		{"text:" + sha256abc, "", Text},
		{"fixed:sha1:" + abcVectors[1].nb32, "", Flat},
		{"fixed:r:sha256:" + abcVectors[2].hex, "fixed:r:" + sha256abc, Recursive},
	} {
		ca, err := ParseCA(tc.in)
		if err != nil {
			t.Fatalf("ParseCA(%q): %v", tc.in, err)
		}
		want := tc.out
		if want == "" {
			want = tc.in
		}
		if ca.Method != tc.m || ca.String() != want {
			t.Errorf("ParseCA(%q) = %v %q, want %v %q", tc.in, ca.Method, ca.String(), tc.m, want)
		}
	}
	for _, bad := range []string{"", "fixed", "fixed:r:", "fixed:r:sha256", "text:sha1:" + abcVectors[1].nb32, "source:" + sha256abc, "fixed:sha256-" + abcVectors[2].nb32} {
		if _, err := ParseCA(bad); err == nil {
			t.Errorf("ParseCA(%q) succeeded", bad)
		}
	}
}

func TestCAStorePath(t *testing.T) {
	// builtins.toFile "foo" "bar", see the storepath vectors.
	ca := CA{Method: Text, Hash: Sum(SHA256, []byte("bar"))}
	p, err := ca.StorePath("foo", nil, false)
	if err != nil || p.Basename() != "vxjiwkjkn7x4079qvh1jkl5pn05j2aw0-foo" {
		t.Fatalf("text CA path = %v, %v", p, err)
	}
	sha1, _ := ParseAs(SHA1, "0beec7b5ea3f0fdbc95d0dd47f3c5bc275da8a33")
	p, err = CA{Method: Recursive, Hash: sha1}.StorePath("bar", nil, false)
	if err != nil || p.Basename() != "mp57d33657rf34lzvlbpfa1gjfv5gmpg-bar" {
		t.Fatalf("fixed r:sha1 path = %v, %v", p, err)
	}
	if _, err := (CA{Method: Flat, Hash: sha1}).StorePath("bar", nil, true); err == nil {
		t.Error("flat CA with self reference accepted")
	}
}

func FuzzParse(f *testing.F) {
	for _, v := range abcVectors {
		f.Add(v.algo.String() + ":" + v.nb32)
		f.Add(v.algo.String() + ":" + v.hex)
		f.Add(v.sri)
		f.Add("fixed:r:" + v.algo.String() + ":" + v.nb32)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if h, err := Parse(s); err == nil {
			h2, err := Parse(h.String())
			if err != nil || !h2.Equal(h) {
				t.Fatalf("round trip of %q via %q: %v %v", s, h.String(), h2, err)
			}
			if h3, err := Parse(h.SRI()); err != nil || !h3.Equal(h) {
				t.Fatalf("SRI round trip of %q: %v", s, err)
			}
		}
		if ca, err := ParseCA(s); err == nil {
			ca2, err := ParseCA(ca.String())
			if err != nil || ca2.Method != ca.Method || !ca2.Hash.Equal(ca.Hash) {
				t.Fatalf("CA round trip of %q: %v", s, err)
			}
		}
	})
}
