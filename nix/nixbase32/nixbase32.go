// Package nixbase32 implements Nix's base-32 encoding: its own alphabet
// (no e, o, u, t) and its own bit order, where the last character holds the
// least significant bits of the first byte. It is not RFC 4648 base32.
package nixbase32

import "fmt"

const alphabet = "0123456789abcdfghijklmnpqrsvwxyz"

var decodeTable = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = int8(i)
	}
	return t
}()

// EncodedLen is the length of the encoding of n bytes.
func EncodedLen(n int) int {
	if n == 0 {
		return 0
	}
	return (n*8-1)/5 + 1
}

// DecodedLen is the number of bytes an encoding of length n decodes to.
func DecodedLen(n int) int { return n * 5 / 8 }

// EncodeToString encodes b; the most significant 5-bit group comes first.
func EncodeToString(b []byte) string {
	return string(AppendEncode(make([]byte, 0, EncodedLen(len(b))), b))
}

// AppendEncode appends the encoding of b to dst (no allocation when dst
// has room: store path strings are built in one piece with it).
func AppendEncode(dst, b []byte) []byte {
	l := EncodedLen(len(b))
	for n := l - 1; n >= 0; n-- {
		bit := n * 5
		i, j := bit/8, uint(bit%8)
		c := b[i] >> j
		if i+1 < len(b) {
			c |= b[i+1] << (8 - j)
		}
		dst = append(dst, alphabet[c&0x1f])
	}
	return dst
}

// DecodeString decodes s, refusing characters outside the alphabet, lengths
// no byte count encodes to, and set bits beyond the last byte.
func DecodeString(s string) ([]byte, error) {
	n := DecodedLen(len(s))
	if EncodedLen(n) != len(s) {
		return nil, fmt.Errorf("nixbase32: invalid length %d", len(s))
	}
	out := make([]byte, n)
	for k := 0; k < len(s); k++ {
		v := decodeTable[s[len(s)-1-k]]
		if v < 0 {
			return nil, fmt.Errorf("nixbase32: invalid character %q at %d", s[len(s)-1-k], len(s)-1-k)
		}
		bit := k * 5
		i, j := bit/8, uint(bit%8)
		out[i] |= byte(v) << j
		carry := byte(v) >> (8 - j)
		if i+1 < n {
			out[i+1] |= carry
		} else if carry != 0 {
			return nil, fmt.Errorf("nixbase32: non-zero padding bits in %q", s)
		}
	}
	return out, nil
}

// Is reports whether c belongs to the alphabet.
func Is(c byte) bool { return decodeTable[c] >= 0 }
