// Package nixhash parses and prints hashes the way Nix writes them:
// "<algo>:<digest>" with the digest in base16, nixbase32 or base64
// (told apart by length, as Nix does), SRI "<algo>-<base64>", and a bare
// digest when the algorithm is known from context. It also handles content
// address strings ("fixed:[r:]<algo>:<nb32>", "text:sha256:<nb32>").
//
// Printing: String is "<algo>:<nixbase32>", the form narinfo files and
// store path computations use; Hex, Nix32, Base64 and SRI give the others.
package nixhash

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"

	"github.com/tvix-go/tvix/nix/nixbase32"
)

// Algo is a hash algorithm Nix knows.
type Algo uint8

const (
	MD5 Algo = iota + 1
	SHA1
	SHA256
	SHA512
)

var algoNames = map[Algo]string{MD5: "md5", SHA1: "sha1", SHA256: "sha256", SHA512: "sha512"}

// ParseAlgo accepts Nix's lower-case names.
func ParseAlgo(s string) (Algo, error) {
	for a, n := range algoNames {
		if s == n {
			return a, nil
		}
	}
	return 0, fmt.Errorf("unknown hash algorithm %q: want md5, sha1, sha256 or sha512", s)
}

func (a Algo) String() string {
	if n, ok := algoNames[a]; ok {
		return n
	}
	return fmt.Sprintf("Algo(%d)", uint8(a))
}

// Size is the digest length in bytes (0 for an unknown algorithm).
func (a Algo) Size() int {
	switch a {
	case MD5:
		return md5.Size
	case SHA1:
		return sha1.Size
	case SHA256:
		return sha256.Size
	case SHA512:
		return sha512.Size
	}
	return 0
}

// New returns a fresh hasher for a.
func (a Algo) New() hash.Hash {
	switch a {
	case MD5:
		return md5.New()
	case SHA1:
		return sha1.New()
	case SHA256:
		return sha256.New()
	case SHA512:
		return sha512.New()
	}
	panic(fmt.Sprintf("nixhash: New on invalid algorithm %d", a))
}

// Hash is a digest together with its algorithm.
type Hash struct {
	Algo   Algo
	Digest []byte
}

// New checks that digest has the length algo produces.
func New(algo Algo, digest []byte) (Hash, error) {
	if algo.Size() == 0 {
		return Hash{}, fmt.Errorf("invalid hash algorithm %v", algo)
	}
	if len(digest) != algo.Size() {
		return Hash{}, fmt.Errorf("%v digest has %d bytes, want %d", algo, len(digest), algo.Size())
	}
	return Hash{Algo: algo, Digest: bytes.Clone(digest)}, nil
}

// Sum hashes b.
func Sum(algo Algo, b []byte) Hash {
	h := algo.New()
	h.Write(b)
	return Hash{Algo: algo, Digest: h.Sum(nil)}
}

// Parse accepts "<algo>:<base16|nixbase32|base64>" and SRI "<algo>-<base64>".
func Parse(s string) (Hash, error) {
	if a, rest, ok := strings.Cut(s, ":"); ok {
		algo, err := ParseAlgo(a)
		if err != nil {
			return Hash{}, fmt.Errorf("parse hash %q: %w", s, err)
		}
		return decode(s, algo, rest, false)
	}
	if a, rest, ok := strings.Cut(s, "-"); ok {
		algo, err := ParseAlgo(a)
		if err != nil {
			return Hash{}, fmt.Errorf("parse SRI hash %q: %w", s, err)
		}
		return decode(s, algo, rest, true)
	}
	return Hash{}, fmt.Errorf("parse hash %q: want <algo>:<digest> or SRI <algo>-<base64>", s)
}

// ParseAs parses a hash whose algorithm is known from context: a bare
// digest in any encoding, or a prefixed/SRI form naming the same algorithm.
func ParseAs(algo Algo, s string) (Hash, error) {
	if strings.ContainsAny(s, ":-") {
		h, err := Parse(s)
		if err != nil {
			return h, err
		}
		if h.Algo != algo {
			return Hash{}, fmt.Errorf("parse hash %q: algorithm %v, want %v", s, h.Algo, algo)
		}
		return h, nil
	}
	if algo.Size() == 0 {
		return Hash{}, fmt.Errorf("parse hash %q: invalid hash algorithm %v", s, algo)
	}
	return decode(s, algo, s, false)
}

func decode(whole string, algo Algo, enc string, sriOnly bool) (Hash, error) {
	n := algo.Size()
	var (
		b   []byte
		err error
	)
	// Nix 2.8's order (Hash::Hash in libutil/hash.cc): an SRI digest is
	// base64 of any length that decodes to the digest size; otherwise the
	// length says the encoding, base64 only at its padded length.
	switch {
	case sriOnly:
		b, err = DecodeBase64(enc)
	case len(enc) == 2*n:
		b, err = hex.DecodeString(enc)
	case len(enc) == nixbase32.EncodedLen(n):
		b, err = nixbase32.DecodeString(enc)
	case len(enc) == base64Len(n):
		b, err = DecodeBase64(enc)
	default:
		err = fmt.Errorf("digest has %d characters; a %v digest has %d (base16), %d (nixbase32) or %d (base64)",
			len(enc), algo, 2*n, nixbase32.EncodedLen(n), base64.StdEncoding.EncodedLen(n))
	}
	if err == nil && len(b) != n {
		err = fmt.Errorf("digest decodes to %d bytes, want %d", len(b), n)
	}
	if err != nil {
		return Hash{}, fmt.Errorf("parse hash %q: %w", whole, err)
	}
	return Hash{Algo: algo, Digest: b}, nil
}

// Hex is the lower-case base16 digest.
func (h Hash) Hex() string { return hex.EncodeToString(h.Digest) }

// Nix32 is the nixbase32 digest.
func (h Hash) Nix32() string { return nixbase32.EncodeToString(h.Digest) }

// Base64 is the padded standard base64 digest.
func (h Hash) Base64() string { return base64.StdEncoding.EncodeToString(h.Digest) }

// SRI is "<algo>-<base64>".
func (h Hash) SRI() string { return h.Algo.String() + "-" + h.Base64() }

// String is "<algo>:<nixbase32>", Nix's default printed form.
func (h Hash) String() string { return h.Algo.String() + ":" + h.Nix32() }

// Equal compares algorithm and digest.
func (h Hash) Equal(o Hash) bool { return h.Algo == o.Algo && bytes.Equal(h.Digest, o.Digest) }

// IsZero reports an unset hash.
func (h Hash) IsZero() bool { return h.Algo == 0 && len(h.Digest) == 0 }
