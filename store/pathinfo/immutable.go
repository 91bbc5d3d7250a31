package pathinfo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/storev1"
)

// ErrConflict marks a Put of a store path already recorded with other
// contents or metadata. Store paths are immutable: what was recorded is
// what every reader (the mount, nar-bridge, substituters downstream) has
// been handed, and signatures made for it would vouch for the new one.
var ErrConflict = errors.New("store path already recorded differently")

// Merge is what a Put of next over stored records: stored itself, with the
// signatures of next it lacked appended. It fails with ErrConflict if next
// disagrees on the root node, NarHash, NarSize, References, CA or Deriver.
// A CA or Deriver that next leaves out agrees with any: several clients
// may upload one path, and not all know its deriver.
func Merge(stored, next *storev1.PathInfo) (*storev1.PathInfo, error) {
	if err := disagreement(stored, next); err != nil {
		return nil, fmt.Errorf("%s: %w: %w", castore.NodeName(stored.GetNode()), ErrConflict, err)
	}
	out := proto.Clone(stored).(*storev1.PathInfo)
	for _, s := range next.GetNarinfo().GetSignatures() {
		if !slices.ContainsFunc(out.Narinfo.Signatures, func(o *storev1.NARInfo_Signature) bool {
			return o.GetName() == s.GetName() && bytes.Equal(o.GetData(), s.GetData())
		}) {
			out.Narinfo.Signatures = append(out.Narinfo.Signatures, proto.Clone(s).(*storev1.NARInfo_Signature))
		}
	}
	return out, nil
}

func disagreement(a, b *storev1.PathInfo) error {
	an, bn := a.GetNarinfo(), b.GetNarinfo()
	switch {
	case !bytes.Equal(an.GetNarSha256(), bn.GetNarSha256()):
		return fmt.Errorf("NarHash differs: recorded sha256:%x, new sha256:%x", an.GetNarSha256(), bn.GetNarSha256())
	case an.GetNarSize() != bn.GetNarSize():
		return fmt.Errorf("NarSize differs: recorded %d, new %d", an.GetNarSize(), bn.GetNarSize())
	case !proto.Equal(a.GetNode(), b.GetNode()):
		// Same NAR, other tree: the NarHash would vouch for bytes the
		// mount and NAR rendering do not serve.
		return fmt.Errorf("root node differs (other contents for the same NarHash)")
	case !sameSet(a.GetReferences(), b.GetReferences()):
		return fmt.Errorf("references differ: recorded %v, new %v", an.GetReferenceNames(), bn.GetReferenceNames())
	case bn.GetCa() != nil && !proto.Equal(an.GetCa(), bn.GetCa()):
		return fmt.Errorf("CA differs: recorded %v, new %v", an.GetCa(), bn.GetCa())
	case bn.GetDeriver() != nil && !proto.Equal(an.GetDeriver(), bn.GetDeriver()):
		return fmt.Errorf("deriver differs: recorded %s, new %s", deriverName(an), deriverName(bn))
	}
	return nil
}

func deriverName(n *storev1.NARInfo) string {
	d := n.GetDeriver()
	if d == nil {
		return "none"
	}
	var a [storepath.DigestSize]byte
	copy(a[:], d.GetDigest())
	return storepath.StorePath{Digest: a, Name: d.GetName()}.Basename()
}

func sameSet(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	sa, sb := slices.Clone(a), slices.Clone(b)
	slices.SortFunc(sa, bytes.Compare)
	slices.SortFunc(sb, bytes.Compare)
	return slices.EqualFunc(sa, sb, bytes.Equal)
}

// ErrMissingReference marks a PathInfo whose references are not in the
// store. Recording it would break the closure invariant the mount, `nix
// copy --from` and substituters downstream rely on: every path they are
// handed can be had with all it refers to.
var ErrMissingReference = errors.New("reference not in the store")

// CheckReferences checks that every reference of info (but itself) is in
// svc, which may fetch it from a substituter to answer.
func CheckReferences(ctx context.Context, svc Service, info *storev1.PathInfo) error {
	self := castore.NodeName(info.GetNode())
	for i, ref := range info.GetReferences() {
		name := info.GetNarinfo().GetReferenceNames()[i]
		if name == string(self) {
			continue
		}
		var d [storepath.DigestSize]byte
		copy(d[:], ref)
		if _, err := svc.Get(ctx, d); err != nil {
			if errors.Is(err, ErrNotFound) {
				return fmt.Errorf("%s: %w: %s", self, ErrMissingReference, name)
			}
			return fmt.Errorf("%s: look up reference %s: %w", self, name, err)
		}
	}
	return nil
}
