package nixhash

import (
	"strings"
	"testing"

	"github.com/tvix-go/tvix/internal/nixtest"
)

// hashForms are spellings of sha256("hello") (and some not) where Nix
// 2.8's leniency matters: SRI without padding, with extra padding or
// junk after it, with set trailing bits or a newline; prefixed base64
// only at its padded length.
var hashForms = []string{
	"sha256-LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=",
	"sha256-LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ",
	"sha256-LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ===",
	"sha256-LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=junk",
	"sha256-LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCR=",
	"sha256-LPJNul+wow4m6Dsqxbni\nnhsWHlwfp0JecwQzYpOLmCQ=",
	"sha256-LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmC",
	"sha256-LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQAA",
	"sha256-LPJNul+wow4m6Dsq xbninhsWHlwfp0JecwQzYpOLmCQ=",
	"sha256:LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=",
	"sha256:LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCR=",
	"sha256:LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ",
	"sha256:LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmC==",
	"sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
	"sha256:2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824",
	"sha256:094qif9n4cq4fdg459qzbhg1c6wywawwaaivx0k0x8xhbyx4vwic",
}

// TestHashParsingAgainstNix: Parse accepts exactly the spellings Nix 2.8
// accepts, with the same digest.
func TestHashParsingAgainstNix(t *testing.T) {
	nixtest.Require(t)
	for _, s := range hashForms {
		want, nixErr := nixtest.RunErr("nix", "hash", "to-base16", s)
		h, err := Parse(s)
		switch {
		case nixErr != nil && err == nil:
			t.Errorf("%q: Nix refuses it (%v), Parse gives %s", s, nixErr, h.Hex())
		case nixErr == nil && err != nil:
			t.Errorf("%q: Nix gives %s, Parse refuses it: %v", s, strings.TrimSpace(string(want)), err)
		case nixErr == nil && h.Hex() != strings.TrimSpace(string(want)):
			t.Errorf("%q: Nix gives %s, Parse %s", s, strings.TrimSpace(string(want)), h.Hex())
		}
	}
}

func TestDecodeBase64(t *testing.T) {
	for in, want := range map[string]string{
		"aGVsbG8=": "hello", "aGVsbG8": "hello", "aGVsbG8==": "hello", "aGVsbG9=": "hello",
		"aGVs\nbG8=": "hello", "aGVsbG8=x!": "hello", "": "",
	} {
		got, err := DecodeBase64(in)
		if err != nil || string(got) != want {
			t.Errorf("DecodeBase64(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"aGV sbG8=", "aGVs!bG8=", "aGVs-bG8"} {
		if _, err := DecodeBase64(bad); err == nil {
			t.Errorf("DecodeBase64(%q) accepted", bad)
		}
	}
}
