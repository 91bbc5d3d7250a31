// Package castore is the content-addressed store: blobs named by the BLAKE3
// digest of their contents and directories named by the BLAKE3 digest of
// their canonical protobuf encoding. It knows nothing about Nix.
package castore

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"lukechampine.com/blake3"
)

// DigestSize is the length of a BLAKE3-256 digest.
const DigestSize = 32

// Digest names a blob or a directory.
type Digest [DigestSize]byte

// ErrNotFound is returned (wrapped) when a blob or directory does not exist.
var ErrNotFound = errors.New("not found")

// DigestFromBytes checks the length, so a truncated digest off the wire
// never silently names the wrong object.
func DigestFromBytes(b []byte) (Digest, error) {
	var d Digest
	if len(b) != DigestSize {
		return d, fmt.Errorf("invalid digest length %d, want %d", len(b), DigestSize)
	}
	copy(d[:], b)
	return d, nil
}

// ParseDigest accepts the forms users see: "b3:<base64>", plain base64 or
// 64 hex characters.
func ParseDigest(s string) (Digest, error) {
	raw := strings.TrimPrefix(s, "b3:")
	if len(raw) == 2*DigestSize {
		if b, err := hex.DecodeString(raw); err == nil {
			return DigestFromBytes(b)
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(raw); err == nil && len(b) == DigestSize {
			return DigestFromBytes(b)
		}
	}
	return Digest{}, fmt.Errorf("parse digest %q: want b3:<base64> or 64 hex characters", s)
}

// String is Tvix's display form (also the FUSE xattr value).
func (d Digest) String() string { return "b3:" + base64.StdEncoding.EncodeToString(d[:]) }

// Hex is used for object-store file names.
func (d Digest) Hex() string { return hex.EncodeToString(d[:]) }

// Bytes returns a fresh copy, safe to put into a proto message.
func (d Digest) Bytes() []byte { return append([]byte(nil), d[:]...) }

// IsZero reports whether d is unset.
func (d Digest) IsZero() bool { return d == Digest{} }

// HashBlob computes the digest of an in-memory blob.
func HashBlob(b []byte) Digest { return blake3.Sum256(b) }

// EmptyBlobDigest is the digest of the empty blob (and of the empty directory).
var EmptyBlobDigest = HashBlob(nil)
