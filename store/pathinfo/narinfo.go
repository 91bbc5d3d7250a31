package pathinfo

import (
	"fmt"
	"strings"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/nix/narinfo"
	"github.com/tvix-go/tvix/nix/nixhash"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/storev1"
)

type caKind struct {
	m nixhash.Method
	a nixhash.Algo
}

var caToProto = map[caKind]storev1.NARInfo_CA_Hash{
	{nixhash.Recursive, nixhash.SHA256}: storev1.NARInfo_CA_NAR_SHA256,
	{nixhash.Recursive, nixhash.SHA1}:   storev1.NARInfo_CA_NAR_SHA1,
	{nixhash.Recursive, nixhash.SHA512}: storev1.NARInfo_CA_NAR_SHA512,
	{nixhash.Recursive, nixhash.MD5}:    storev1.NARInfo_CA_NAR_MD5,
	{nixhash.Text, nixhash.SHA256}:      storev1.NARInfo_CA_TEXT_SHA256,
	{nixhash.Flat, nixhash.SHA1}:        storev1.NARInfo_CA_FLAT_SHA1,
	{nixhash.Flat, nixhash.MD5}:         storev1.NARInfo_CA_FLAT_MD5,
	{nixhash.Flat, nixhash.SHA256}:      storev1.NARInfo_CA_FLAT_SHA256,
	{nixhash.Flat, nixhash.SHA512}:      storev1.NARInfo_CA_FLAT_SHA512,
}

// CAToProto converts a content address to the PathInfo enum form.
func CAToProto(ca nixhash.CA) (*storev1.NARInfo_CA, error) {
	t, ok := caToProto[caKind{ca.Method, ca.Hash.Algo}]
	if !ok {
		return nil, fmt.Errorf("content address %v has no PathInfo representation", ca)
	}
	return &storev1.NARInfo_CA{Type: t, Digest: append([]byte(nil), ca.Hash.Digest...)}, nil
}

// CAFromProto converts back, checking the digest length.
func CAFromProto(p *storev1.NARInfo_CA) (nixhash.CA, error) {
	for k, t := range caToProto {
		if t == p.GetType() {
			h, err := nixhash.New(k.a, p.GetDigest())
			if err != nil {
				return nixhash.CA{}, fmt.Errorf("content address %v: %w", t, err)
			}
			return nixhash.CA{Method: k.m, Hash: h}, nil
		}
	}
	return nixhash.CA{}, fmt.Errorf("unknown content address type %d", p.GetType())
}

// FromNarInfo makes the PathInfo for ni's store path with the given root
// node (renamed to the store path's basename). URL, Compression, FileHash,
// FileSize and System describe the cache's copy and are dropped.
func FromNarInfo(ni *narinfo.NarInfo, root *castorev1.Node) (*storev1.PathInfo, error) {
	if ni.NarHash.Algo != nixhash.SHA256 {
		return nil, fmt.Errorf("path info for %s: NAR hash is %v, want sha256", ni.StorePath, ni.NarHash.Algo)
	}
	p := &storev1.NARInfo{
		NarSize:   ni.NarSize,
		NarSha256: append([]byte(nil), ni.NarHash.Digest...),
	}
	info := &storev1.PathInfo{
		Node:    castore.RenameNode(root, []byte(ni.StorePath.Basename())),
		Narinfo: p,
	}
	for _, r := range ni.References {
		info.References = append(info.References, append([]byte(nil), r.Digest[:]...))
		p.ReferenceNames = append(p.ReferenceNames, r.Basename())
	}
	for _, s := range ni.Signatures {
		p.Signatures = append(p.Signatures, &storev1.NARInfo_Signature{Name: s.Name, Data: append([]byte(nil), s.Data...)})
	}
	if ni.Deriver != nil {
		name, ok := strings.CutSuffix(ni.Deriver.Name, ".drv")
		if !ok {
			return nil, fmt.Errorf("path info for %s: deriver %s does not end in .drv", ni.StorePath, ni.Deriver)
		}
		p.Deriver = &storev1.StorePath{Name: name, Digest: append([]byte(nil), ni.Deriver.Digest[:]...)}
	}
	if ni.CA != nil {
		ca, err := CAToProto(*ni.CA)
		if err != nil {
			return nil, fmt.Errorf("path info for %s: %w", ni.StorePath, err)
		}
		p.Ca = ca
	}
	return info, nil
}

// ToNarInfo builds the narinfo fields a PathInfo holds; the caller sets
// URL and Compression for where it serves the NAR.
func ToNarInfo(info *storev1.PathInfo) (*narinfo.NarInfo, error) {
	sp, err := storepath.FromBasename(string(castore.NodeName(info.GetNode())))
	if err != nil {
		return nil, fmt.Errorf("narinfo from path info: root node name: %w", err)
	}
	p := info.GetNarinfo()
	if p == nil {
		return nil, fmt.Errorf("narinfo from path info %s: no narinfo", sp)
	}
	h, err := nixhash.New(nixhash.SHA256, p.GetNarSha256())
	if err != nil {
		return nil, fmt.Errorf("narinfo from path info %s: nar_sha256: %w", sp, err)
	}
	ni := &narinfo.NarInfo{StorePath: sp, NarHash: h, NarSize: p.GetNarSize()}
	if len(p.GetReferenceNames()) != len(info.GetReferences()) {
		return nil, fmt.Errorf("narinfo from path info %s: %d references but %d reference names", sp, len(info.GetReferences()), len(p.GetReferenceNames()))
	}
	for i, name := range p.GetReferenceNames() {
		r, err := storepath.FromBasename(name)
		if err != nil {
			return nil, fmt.Errorf("narinfo from path info %s: reference %d: %w", sp, i, err)
		}
		if string(r.Digest[:]) != string(info.GetReferences()[i]) {
			return nil, fmt.Errorf("narinfo from path info %s: reference name %s does not match digest %x", sp, name, info.GetReferences()[i])
		}
		ni.References = append(ni.References, r)
	}
	for _, s := range p.GetSignatures() {
		if len(s.GetData()) != narinfo.SignatureSize || s.GetName() == "" {
			return nil, fmt.Errorf("narinfo from path info %s: invalid signature %q (%d bytes)", sp, s.GetName(), len(s.GetData()))
		}
		ni.Signatures = append(ni.Signatures, narinfo.Signature{Name: s.GetName(), Data: append([]byte(nil), s.GetData()...)})
	}
	if d := p.GetDeriver(); d != nil {
		if len(d.GetDigest()) != storepath.DigestSize {
			return nil, fmt.Errorf("narinfo from path info %s: deriver digest has %d bytes", sp, len(d.GetDigest()))
		}
		var dp storepath.StorePath
		copy(dp.Digest[:], d.GetDigest())
		dp.Name = d.GetName() + ".drv"
		if err := storepath.ValidateName(dp.Name); err != nil {
			return nil, fmt.Errorf("narinfo from path info %s: deriver: %w", sp, err)
		}
		ni.Deriver = &dp
	}
	if c := p.GetCa(); c != nil {
		ca, err := CAFromProto(c)
		if err != nil {
			return nil, fmt.Errorf("narinfo from path info %s: %w", sp, err)
		}
		ni.CA = &ca
	}
	return ni, nil
}
