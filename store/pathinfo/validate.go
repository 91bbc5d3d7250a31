package pathinfo

import (
	"errors"
	"fmt"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/storev1"
)

// ErrInvalid marks a PathInfo that fails validation.
var ErrInvalid = errors.New("invalid path info")

// Validate checks a PathInfo as Tvix does and returns the store path its
// root node names: the root node is valid and named by a store path
// basename, references are 20 bytes and match reference_names, nar_sha256
// is 32 bytes, signatures 64 bytes, the deriver a valid store path.
func Validate(info *storev1.PathInfo) (storepath.StorePath, error) {
	sp, err := validate(info)
	if err != nil {
		return sp, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return sp, nil
}

func validate(info *storev1.PathInfo) (storepath.StorePath, error) {
	var sp storepath.StorePath
	if info.GetNode() == nil {
		return sp, fmt.Errorf("no root node")
	}
	if err := castore.ValidateNode(info.GetNode()); err != nil {
		return sp, fmt.Errorf("%w", err)
	}
	sp, err := storepath.FromBasename(string(castore.NodeName(info.GetNode())))
	if err != nil {
		return sp, fmt.Errorf("root node name: %w", err)
	}
	ni := info.GetNarinfo()
	if ni == nil {
		return sp, fmt.Errorf("%s: no narinfo", sp)
	}
	if len(ni.GetNarSha256()) != 32 {
		return sp, fmt.Errorf("%s: nar_sha256 has %d bytes, want 32", sp, len(ni.GetNarSha256()))
	}
	if len(ni.GetReferenceNames()) != len(info.GetReferences()) {
		return sp, fmt.Errorf("%s: %d references but %d reference names", sp, len(info.GetReferences()), len(ni.GetReferenceNames()))
	}
	for i, ref := range info.GetReferences() {
		if len(ref) != storepath.DigestSize {
			return sp, fmt.Errorf("%s: reference %d has %d bytes, want %d", sp, i, len(ref), storepath.DigestSize)
		}
		rp, err := storepath.FromBasename(ni.GetReferenceNames()[i])
		if err != nil {
			return sp, fmt.Errorf("%s: reference name %d: %w", sp, i, err)
		}
		if string(rp.Digest[:]) != string(ref) {
			return sp, fmt.Errorf("%s: reference name %q does not match digest %x", sp, rp.Basename(), ref)
		}
	}
	for _, s := range ni.GetSignatures() {
		if len(s.GetData()) != 64 {
			return sp, fmt.Errorf("%s: signature %q has %d bytes, want 64", sp, s.GetName(), len(s.GetData()))
		}
	}
	if d := ni.GetDeriver(); d != nil {
		if len(d.GetDigest()) != storepath.DigestSize {
			return sp, fmt.Errorf("%s: deriver digest has %d bytes", sp, len(d.GetDigest()))
		}
		if err := storepath.ValidateName(d.GetName()); err != nil {
			return sp, fmt.Errorf("%s: deriver: %w", sp, err)
		}
	}
	return sp, nil
}
