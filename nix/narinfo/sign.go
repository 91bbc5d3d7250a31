package narinfo

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"strings"

	"github.com/tvix-go/tvix/nix/nixhash"
)

// SignatureSize is the length of an ed25519 signature.
const SignatureSize = ed25519.SignatureSize

// SecretKey is a named ed25519 signing key, as written by
// `nix-store --generate-binary-cache-key`: "name:base64(64-byte key)".
type SecretKey struct {
	Name string
	Key  ed25519.PrivateKey
}

// PublicKey is "name:base64(32-byte key)", as in trusted-public-keys.
type PublicKey struct {
	Name string
	Key  ed25519.PublicKey
}

func parseNamed(kind, s string, size int) (string, []byte, error) {
	s = strings.TrimSpace(s)
	name, b64, ok := strings.Cut(s, ":")
	if !ok || name == "" {
		return "", nil, fmt.Errorf("invalid %s key: want <name>:<base64>", kind)
	}
	if nixhash.HasSpace(name) {
		return "", nil, fmt.Errorf("invalid %s key %q: the name contains white space", kind, name)
	}
	// As Nix 2.8 decodes keys: padding may be missing.
	b, err := nixhash.DecodeBase64(b64)
	if err != nil {
		return "", nil, fmt.Errorf("invalid %s key %q: %w", kind, name, err)
	}
	if len(b) != size {
		return "", nil, fmt.Errorf("invalid %s key %q: %d bytes, want %d", kind, name, len(b), size)
	}
	return name, b, nil
}

// ParseSecretKey parses "name:base64". The key's second half must be the
// public key of its seed, as libsodium lays it out; a file with
// mismatching halves would sign with one key and claim another.
func ParseSecretKey(s string) (SecretKey, error) {
	name, b, err := parseNamed("secret", s, ed25519.PrivateKeySize)
	if err != nil {
		return SecretKey{}, err
	}
	k := ed25519.NewKeyFromSeed(b[:ed25519.SeedSize])
	if string(k) != string(b) {
		return SecretKey{}, fmt.Errorf("invalid secret key %q: public half does not match the seed", name)
	}
	return SecretKey{Name: name, Key: k}, nil
}

// ParsePublicKey parses "name:base64".
func ParsePublicKey(s string) (PublicKey, error) {
	name, b, err := parseNamed("public", s, ed25519.PublicKeySize)
	if err != nil {
		return PublicKey{}, err
	}
	return PublicKey{Name: name, Key: ed25519.PublicKey(b)}, nil
}

// GenerateKey makes a new key pair named name (rand nil = crypto/rand).
func GenerateKey(name string, rnd io.Reader) (SecretKey, PublicKey, error) {
	if name == "" || strings.Contains(name, ":") || nixhash.HasSpace(name) {
		return SecretKey{}, PublicKey{}, fmt.Errorf("generate key: invalid name %q", name)
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	pub, priv, err := ed25519.GenerateKey(rnd)
	if err != nil {
		return SecretKey{}, PublicKey{}, fmt.Errorf("generate key: %w", err)
	}
	return SecretKey{Name: name, Key: priv}, PublicKey{Name: name, Key: pub}, nil
}

func (k SecretKey) String() string { return k.Name + ":" + base64.StdEncoding.EncodeToString(k.Key) }
func (k PublicKey) String() string { return k.Name + ":" + base64.StdEncoding.EncodeToString(k.Key) }

// Public returns the matching public key.
func (k SecretKey) Public() PublicKey {
	return PublicKey{Name: k.Name, Key: k.Key.Public().(ed25519.PublicKey)}
}

// SignFingerprint signs a fingerprint string.
func (k SecretKey) SignFingerprint(fp string) Signature {
	return Signature{Name: k.Name, Data: ed25519.Sign(k.Key, []byte(fp))}
}

// VerifyFingerprint reports whether sig is k's signature of fp: the names
// must match as well as the bytes.
func (k PublicKey) VerifyFingerprint(fp string, sig Signature) bool {
	return sig.Name == k.Name && len(sig.Data) == SignatureSize && ed25519.Verify(k.Key, []byte(fp), sig.Data)
}

// Sign adds k's signature over ni's fingerprint, replacing an earlier
// signature by the same key name.
func (ni *NarInfo) Sign(k SecretKey) {
	sig := k.SignFingerprint(ni.Fingerprint())
	for i, s := range ni.Signatures {
		if s.Name == k.Name {
			ni.Signatures[i] = sig
			return
		}
	}
	ni.Signatures = append(ni.Signatures, sig)
}

// Verify returns the names of the trusted keys with a valid signature on
// ni; the path is trusted when that is non-empty (Nix's sigs-needed 1).
func (ni *NarInfo) Verify(trusted []PublicKey) []string {
	fp := ni.Fingerprint()
	var ok []string
	for _, s := range ni.Signatures {
		for _, k := range trusted {
			if k.VerifyFingerprint(fp, s) {
				ok = append(ok, k.Name)
				break
			}
		}
	}
	return ok
}
