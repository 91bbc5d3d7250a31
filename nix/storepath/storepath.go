// Package storepath parses, validates and computes Nix store paths
// (/nix/store/<32 nixbase32 chars>-<name>) exactly as C++ Nix does.
package storepath

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
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
		if c := name[i]; !nameChar(c) {
			return fmt.Errorf("store path name %q has invalid character %q at %d", name, c, i)
		}
	}
	return nil
}

func nameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("+-._?=", c) >= 0
}

// namePartsValid is ValidateName(a + b) == nil, without joining them.
func namePartsValid(a, b string) bool {
	if n := len(a) + len(b); n == 0 || n > MaxNameLen {
		return false
	}
	for i := 0; i < len(a); i++ {
		if !nameChar(a[i]) {
			return false
		}
	}
	for i := 0; i < len(b); i++ {
		if !nameChar(b[i]) {
			return false
		}
	}
	return true
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

// Check is Parse(s)'s verdict without the parsed path: derivations check
// every reference this way, and decoding the digest would allocate.
func Check(s string) error {
	rest, ok := strings.CutPrefix(s, StoreDir+"/")
	// 32 nixbase32 characters are exactly 20 bytes: no padding bits to check.
	ok = ok && len(rest) >= EncodedDigestLen+2 && rest[EncodedDigestLen] == '-' && namePartsValid(rest[EncodedDigestLen+1:], "")
	for i := 0; ok && i < EncodedDigestLen; i++ {
		ok = nixbase32.Is(rest[i])
	}
	if ok {
		return nil
	}
	_, err := Parse(s)
	if err == nil {
		return fmt.Errorf("invalid store path %q", s)
	}
	return err
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

// String is the absolute path, in one allocation: paths are made by the
// ten thousand when derivations are instantiated.
func (p StorePath) String() string {
	var b strings.Builder
	b.Grow(p.strLen())
	p.writeTo(&b)
	return b.String()
}

func (p StorePath) strLen() int {
	return len(StoreDir) + 1 + EncodedDigestLen + 1 + len(p.Name)
}

func (p StorePath) writeTo(b *strings.Builder) {
	var d [EncodedDigestLen]byte
	b.WriteString(StoreDir)
	b.WriteByte('/')
	b.Write(nixbase32.AppendEncode(d[:0], p.Digest[:]))
	b.WriteByte('-')
	b.WriteString(p.Name)
}

// PrefixedString is prefix followed by the absolute path, in one
// allocation (a derivation's "=<drv path>" context element, whose tail
// serves as the path itself).
func (p StorePath) PrefixedString(prefix string) string {
	var b strings.Builder
	b.Grow(len(prefix) + p.strLen())
	b.WriteString(prefix)
	p.writeTo(&b)
	return b.String()
}

// Make computes a store path from Nix's fingerprint
// "<type>:sha256:<hex inner>:/nix/store:<name>" (makeStorePath).
func Make(typ string, innerSHA256 []byte, name string) (StorePath, error) {
	if err := ValidateName(name); err != nil {
		return StorePath{}, err
	}
	// The fingerprint is built on the stack when it fits.
	var buf [512]byte
	return StorePath{Digest: digest(append(buf[:0], typ...), innerSHA256, name, ""), Name: name}, nil
}

// digest completes the fingerprint whose type is in fp and hashes it
// (name is name1+name2, given in parts so output names need not be
// joined first).
func digest(fp, innerSHA256 []byte, name1, name2 string) [DigestSize]byte {
	fp = append(fp, ":sha256:"...)
	fp = hex.AppendEncode(fp, innerSHA256)
	fp = append(fp, ':')
	fp = append(fp, StoreDir...)
	fp = append(fp, ':')
	fp = append(fp, name1...)
	fp = append(fp, name2...)
	h := sha256.Sum256(fp)
	var d [DigestSize]byte
	// XOR-fold to 20 bytes, as Nix's compressHash.
	for i, b := range h {
		d[i%DigestSize] ^= b
	}
	return d
}

// fingerprintLen bounds the bytes digest appends after the type.
func fingerprintLen(innerSHA256 []byte, name string) int {
	return len(":sha256:") + 2*len(innerSHA256) + 2 + len(StoreDir) + len(name)
}

// makeWithRefs is Make with the type "<typ>:<ref>...[:self]" (makeType),
// the references written straight into the fingerprint.
func makeWithRefs(typ string, refs []StorePath, self bool, innerSHA256 []byte, name string) (StorePath, error) {
	if err := ValidateName(name); err != nil {
		return StorePath{}, err
	}
	n := len(typ) + len(":self") + fingerprintLen(innerSHA256, name)
	for _, r := range refs {
		n += 1 + r.strLen()
	}
	var buf [512]byte
	fp := buf[:0]
	if n > len(buf) {
		fp = make([]byte, 0, n)
	}
	fp = append(fp, typ...)
	// In the order of the paths as strings, which the digests' nixbase32
	// decides (the common prefix aside); callers mostly pass them sorted.
	if !slices.IsSortedFunc(refs, comparePaths) {
		refs = slices.Clone(refs)
		slices.SortFunc(refs, comparePaths)
	}
	for _, r := range refs {
		fp = append(fp, ':')
		fp = append(fp, StoreDir...)
		fp = append(fp, '/')
		fp = nixbase32.AppendEncode(fp, r.Digest[:])
		fp = append(fp, '-')
		fp = append(fp, r.Name...)
	}
	if self {
		fp = append(fp, ":self"...)
	}
	return StorePath{Digest: digest(fp, innerSHA256, name, ""), Name: name}, nil
}

// comparePaths orders store paths as their strings sort.
func comparePaths(a, b StorePath) int {
	var ea, eb [EncodedDigestLen]byte
	if c := bytes.Compare(nixbase32.AppendEncode(ea[:0], a.Digest[:]), nixbase32.AppendEncode(eb[:0], b.Digest[:])); c != 0 {
		return c
	}
	return strings.Compare(a.Name, b.Name)
}

// MakeText is the path of a text file (builtins.toFile, .drv files):
// type "text" with references, inner hash the sha256 of the contents.
func MakeText(name string, contentsSHA256 []byte, refs []StorePath) (StorePath, error) {
	return makeWithRefs("text", refs, false, contentsSHA256, name)
}

// MakeTextPaths is MakeText with the references as absolute paths, sorted
// and each once (a derivation's, which it holds as strings), checked as
// Check does.
func MakeTextPaths(name string, contentsSHA256 []byte, refs []string) (StorePath, error) {
	if err := ValidateName(name); err != nil {
		return StorePath{}, err
	}
	n := len("text") + fingerprintLen(contentsSHA256, name)
	for i, r := range refs {
		if err := Check(r); err != nil {
			return StorePath{}, err
		}
		if i > 0 && refs[i-1] >= r {
			return StorePath{}, fmt.Errorf("references of %s: %q after %q: not sorted", name, r, refs[i-1])
		}
		n += 1 + len(r)
	}
	var buf [512]byte
	fp := buf[:0]
	if n > len(buf) {
		fp = make([]byte, 0, n)
	}
	fp = append(fp, "text"...)
	for _, r := range refs {
		fp = append(fp, ':')
		fp = append(fp, r...)
	}
	return StorePath{Digest: digest(fp, contentsSHA256, name, ""), Name: name}, nil
}

// MakeSource is the path of content addressed by the sha256 of its NAR
// (nix-store --add, builtins.path): type "source" with references.
func MakeSource(name string, narSHA256 []byte, refs []StorePath, selfRef bool) (StorePath, error) {
	return makeWithRefs("source", refs, selfRef, narSHA256, name)
}

// MakeOutput is the path of an input-addressed derivation output.
func MakeOutput(output string, hashDerivationModulo []byte, name string) (StorePath, error) {
	return Make("output:"+output, hashDerivationModulo, name)
}

// OutputPath is MakeOutput's path as a string, for the output of the
// derivation called drvName (the path's name is drvName, or
// drvName-output): made in one allocation, the name never joined apart.
func OutputPath(output string, hashDerivationModulo []byte, drvName string) (string, error) {
	suffix := ""
	if output != "out" {
		suffix = "-" + output // short, and kept on the stack
	}
	if !namePartsValid(drvName, suffix) {
		return "", ValidateName(drvName + suffix)
	}
	var buf [512]byte
	fp := append(buf[:0], "output:"...)
	fp = append(fp, output...)
	d := digest(fp, hashDerivationModulo, drvName, suffix)
	var b strings.Builder
	b.Grow(len(StoreDir) + 1 + EncodedDigestLen + 1 + len(drvName) + len(suffix))
	StorePath{Digest: d}.writeTo(&b)
	b.WriteString(drvName)
	b.WriteString(suffix)
	return b.String(), nil
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
