// Package storepath parses, validates and computes Nix store paths
// (/nix/store/<32 nixbase32 chars>-<name>) exactly as C++ Nix does.
package storepath

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	"github.com/tvix-go/tvix/nix/nixbase32"
)

const (
	// StoreDir is the only store directory tvix-go serves.
	StoreDir = "/nix/store"
	// DigestSize is the length of the digest in a store path.
	DigestSize = 20
	// EncodedDigestLen is that digest in nixbase32.
	EncodedDigestLen = 32
	// MaxNameLen is Nix's limit: 211 bytes of name after "<hash>-".
	MaxNameLen = 211
)

// StorePath is a parsed store path.
type StorePath struct {
	Digest [DigestSize]byte
	Name   string
}

// ValidateName checks a store path name: 1..211 bytes of
// [A-Za-z0-9+-._?=]. Nix 2.8 allows a leading dot.
func ValidateName(name string) error {
	if name == "" {
		return fmt.Errorf("store path name is empty")
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("store path name %q is longer than %d bytes", name, MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("+-._?=", c) >= 0) {
			return fmt.Errorf("store path name %q has invalid character %q at %d", name, c, i)
		}
	}
	return nil
}

// FromBasename parses "<hash>-<name>".
func FromBasename(s string) (StorePath, error) {
	var sp StorePath
	if len(s) < EncodedDigestLen+2 || s[EncodedDigestLen] != '-' {
		return sp, fmt.Errorf("invalid store path basename %q: want <32 nixbase32 characters>-<name>", s)
	}
	d, err := nixbase32.DecodeString(s[:EncodedDigestLen])
	if err != nil {
		return sp, fmt.Errorf("invalid store path basename %q: %w", s, err)
	}
	copy(sp.Digest[:], d)
	sp.Name = s[EncodedDigestLen+1:]
	if err := ValidateName(sp.Name); err != nil {
		return sp, fmt.Errorf("invalid store path basename %q: %w", s, err)
	}
	return sp, nil
}

// Parse parses an absolute store path; anything below it (a path inside
// the store path) is refused.
func Parse(s string) (StorePath, error) {
	rest, ok := strings.CutPrefix(s, StoreDir+"/")
	if !ok {
		return StorePath{}, fmt.Errorf("invalid store path %q: not in %s", s, StoreDir)
	}
	sp, err := FromBasename(rest)
	if err != nil {
		return sp, fmt.Errorf("invalid store path %q: %w", s, err)
	}
	return sp, nil
}

// ParsePrefix splits an absolute path inside the store into its store path
// and the rest ("" or "/sub/path").
func ParsePrefix(s string) (StorePath, string, error) {
	rest, ok := strings.CutPrefix(s, StoreDir+"/")
	if !ok {
		return StorePath{}, "", fmt.Errorf("path %q is not in %s", s, StoreDir)
	}
	base, sub := rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		base, sub = rest[:i], rest[i:]
	}
	sp, err := FromBasename(base)
	return sp, sub, err
}

// HashPart is the nixbase32 digest, the part narinfo URLs use.
func (p StorePath) HashPart() string { return nixbase32.EncodeToString(p.Digest[:]) }

// Basename is "<hash>-<name>".
func (p StorePath) Basename() string {
	b := make([]byte, 0, nixbase32.EncodedLen(DigestSize)+1+len(p.Name))
	b = nixbase32.AppendEncode(b, p.Digest[:])
	b = append(b, '-')
	return string(append(b, p.Name...))
}

// String is the absolute path. Both are built in one allocation: paths
// are made by the ten thousand when derivations are instantiated.
func (p StorePath) String() string {
	b := make([]byte, 0, len(StoreDir)+1+nixbase32.EncodedLen(DigestSize)+1+len(p.Name))
	b = append(b, StoreDir...)
	b = append(b, '/')
	b = nixbase32.AppendEncode(b, p.Digest[:])
	b = append(b, '-')
	return string(append(b, p.Name...))
}

// Make computes a store path from Nix's fingerprint
// "<type>:sha256:<hex inner>:/nix/store:<name>" (makeStorePath).
func Make(typ string, innerSHA256 []byte, name string) (StorePath, error) {
	if err := ValidateName(name); err != nil {
		return StorePath{}, err
	}
	// The fingerprint is built on the stack when it fits.
	var buf [512]byte
	fp := append(buf[:0], typ...)
	fp = append(fp, ":sha256:"...)
	fp = hex.AppendEncode(fp, innerSHA256)
	fp = append(fp, ':')
	fp = append(fp, StoreDir...)
	fp = append(fp, ':')
	fp = append(fp, name...)
	h := sha256.Sum256(fp)
	var sp StorePath
	// XOR-fold to 20 bytes, as Nix's compressHash.
	for i, b := range h {
		sp.Digest[i%DigestSize] ^= b
	}
	sp.Name = name
	return sp, nil
}

// typeWithRefs appends ":<abs path>" for each reference in sorted order and
// ":self" if asked, as makeType does.
func typeWithRefs(typ string, refs []StorePath, self bool) string {
	paths := make([]string, len(refs))
	for i, r := range refs {
		paths[i] = r.String()
	}
	sort.Strings(paths)
	var b strings.Builder
	b.WriteString(typ)
	for _, p := range paths {
		b.WriteString(":")
		b.WriteString(p)
	}
	if self {
		b.WriteString(":self")
	}
	return b.String()
}

// MakeText is the path of a text file (builtins.toFile, .drv files):
// type "text" with references, inner hash the sha256 of the contents.
func MakeText(name string, contentsSHA256 []byte, refs []StorePath) (StorePath, error) {
	return Make(typeWithRefs("text", refs, false), contentsSHA256, name)
}

// MakeSource is the path of content addressed by the sha256 of its NAR
// (nix-store --add, builtins.path): type "source" with references.
func MakeSource(name string, narSHA256 []byte, refs []StorePath, selfRef bool) (StorePath, error) {
	return Make(typeWithRefs("source", refs, selfRef), narSHA256, name)
}

// MakeOutput is the path of an input-addressed derivation output.
func MakeOutput(output string, hashDerivationModulo []byte, name string) (StorePath, error) {
	return Make("output:"+output, hashDerivationModulo, name)
}

// MakeFixedOutput computes the path of fixed-output content (nix-store
// --add-fixed, fixed-output derivations): recursive sha256 is a "source"
// path; anything else hashes "fixed:out:[r:]<algo>:<hex>:" first.
func MakeFixedOutput(name string, recursive bool, algo string, digest []byte, refs []StorePath) (StorePath, error) {
	if recursive && algo == "sha256" {
		return MakeSource(name, digest, refs, false)
	}
	if len(refs) > 0 {
		return StorePath{}, fmt.Errorf("fixed-output path %q cannot have references", name)
	}
	r := ""
	if recursive {
		r = "r:"
	}
	inner := sha256.Sum256([]byte("fixed:out:" + r + algo + ":" + hex.EncodeToString(digest) + ":"))
	return Make("output:out", inner[:], name)
}
