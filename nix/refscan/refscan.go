// Package refscan finds which of a set of candidate store paths a byte
// stream refers to, as Nix does: a reference is the 32-character nixbase32
// hash part of the path occurring anywhere in the bytes (Nix scans the NAR
// serialisation, so names, symlink targets and contents all count).
//
// The scan is one pass with no per-candidate work: every candidate has the
// same length and alphabet, so it skips ahead past any byte outside the
// nixbase32 alphabet (Boyer-Moore style, as Nix's own scanner), filters
// windows on a 15-bit prefix bitmap, and only then looks the window up in a
// map. Cost is independent of the number of candidates.
package refscan

import (
	"sort"

	"github.com/tvix-go/tvix/nix/nixbase32"
	"github.com/tvix-go/tvix/nix/storepath"
)

const hashLen = storepath.EncodedDigestLen

var isB32 = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = nixbase32.Is(byte(c))
	}
	return
}()

var b32Val = func() (t [256]uint16) {
	const alphabet = "0123456789abcdfghijklmnpqrsvwxyz"
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = uint16(i)
	}
	return
}()

// Scanner is an io.Writer that records which candidates appear in what is
// written to it, across Write boundaries. Not safe for concurrent use.
type Scanner struct {
	candidates map[[hashLen]byte]int
	paths      []storepath.StorePath
	prefix     [1 << 15 / 64]uint64
	found      []bool
	nfound     int
	// tail keeps the last hashLen-1 bytes, so a hash split across writes
	// is still seen.
	tail []byte
	buf  []byte
}

// New returns a Scanner looking for the given paths' hash parts.
func New(candidates []storepath.StorePath) *Scanner {
	s := &Scanner{candidates: make(map[[hashLen]byte]int, len(candidates))}
	for _, p := range candidates {
		var k [hashLen]byte
		copy(k[:], p.HashPart())
		if _, dup := s.candidates[k]; dup {
			continue
		}
		s.candidates[k] = len(s.paths)
		s.paths = append(s.paths, p)
		pf := prefixIndex(k[:])
		s.prefix[pf/64] |= 1 << (pf % 64)
	}
	s.found = make([]bool, len(s.paths))
	return s
}

func prefixIndex(b []byte) uint16 {
	return b32Val[b[0]]<<10 | b32Val[b[1]]<<5 | b32Val[b[2]]
}

// Write scans p; it never fails.
func (s *Scanner) Write(p []byte) (int, error) {
	if len(s.paths) == 0 || s.nfound == len(s.paths) {
		return len(p), nil
	}
	if len(s.tail) > 0 {
		// Scan the seam: the kept tail plus enough of p to complete any
		// window starting in the tail.
		n := min(len(p), hashLen-1)
		s.buf = append(append(s.buf[:0], s.tail...), p[:n]...)
		s.scan(s.buf, len(s.tail))
	}
	s.scan(p, len(p))
	// Keep the last hashLen-1 bytes of tail+p.
	if len(p) >= hashLen-1 {
		s.tail = append(s.tail[:0], p[len(p)-(hashLen-1):]...)
	} else {
		s.tail = append(s.tail, p...)
		if over := len(s.tail) - (hashLen - 1); over > 0 {
			s.tail = append(s.tail[:0], s.tail[over:]...)
		}
	}
	return len(p), nil
}

// scan checks every window of b starting before limit.
func (s *Scanner) scan(b []byte, limit int) {
	// Invariant: b[i:good] are all alphabet bytes, so each byte is
	// classified once, and a byte outside the alphabet skips every window
	// that contains it.
	good := 0
	for i := 0; i+hashLen <= len(b) && i < limit; {
		j := i + hashLen - 1
		for j >= good && isB32[b[j]] {
			j--
		}
		if j >= good {
			good = i + hashLen
			i = j + 1
			continue
		}
		good = i + hashLen
		if pf := prefixIndex(b[i:]); s.prefix[pf/64]&(1<<(pf%64)) != 0 {
			if idx, ok := s.candidates[[hashLen]byte(b[i:i+hashLen])]; ok && !s.found[idx] {
				s.found[idx] = true
				s.nfound++
			}
		}
		i++
	}
}

// Found returns the candidates seen so far, sorted by path.
func (s *Scanner) Found() []storepath.StorePath {
	var out []storepath.StorePath
	for i, f := range s.found {
		if f {
			out = append(out, s.paths[i])
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}
