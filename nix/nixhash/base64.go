package nixhash

import (
	"fmt"
	"strings"
)

const base64Chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

var base64Table = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for i := 0; i < len(base64Chars); i++ {
		t[base64Chars[i]] = int8(i)
	}
	return t
}()

// DecodeBase64 decodes base64 as Nix 2.8 does (libutil's base64Decode),
// so that what Nix accepts in SRI hashes, keys and signatures is accepted
// here too, and nothing else: decoding stops at the first '=' (padding may
// be missing, or more than needed, and what follows it is ignored),
// newlines are skipped, bits left over at the end are dropped whatever
// they are, and any other character outside the alphabet is an error.
func DecodeBase64(s string) ([]byte, error) {
	out := make([]byte, 0, len(s)*3/4)
	var d, bits uint
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '=' {
			break
		}
		if c == '\n' {
			continue
		}
		v := base64Table[c]
		if v < 0 {
			return nil, fmt.Errorf("invalid character %q in base64 at %d", c, i)
		}
		d = d<<6 | uint(v)
		bits += 6
		if bits >= 8 {
			out = append(out, byte(d>>(bits-8)))
			bits -= 8
		}
	}
	return out, nil
}

// base64Len is the length of a padded base64 encoding of n bytes, the only
// length Nix 2.8 takes as base64 in "<algo>:<digest>" (SRI takes any).
func base64Len(n int) int { return (4*n/3 + 3) &^ 3 }

// HasSpace reports whether s contains white space, which a key name may
// not: Nix splits trusted-public-keys at white space, so such a name can
// never be trusted, and a signature claiming one only confuses.
func HasSpace(s string) bool { return strings.ContainsAny(s, " \t\n\r\v\f") }
