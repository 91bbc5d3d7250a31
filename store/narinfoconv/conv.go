// Package narinfoconv converts between a binary cache's narinfo and a
// PathInfo: both carry the same trusted metadata (NAR hash and size,
// references, deriver, signatures, content address), a narinfo points at
// a NAR file where a PathInfo holds a castore root node.
package narinfoconv

import (
	"fmt"
	"strings"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/store/narinfo"
	"github.com/tvix-go/tvix/store/nixhash"
	"github.com/tvix-go/tvix/store/pathinfo"
	"github.com/tvix-go/tvix/store/storepath"
	"github.com/tvix-go/tvix/store/storev1"
)

// ToPathInfo builds the PathInfo for ni with root (whose name is replaced
// by the store path basename). URL, compression and file hash/size belong
// to the cache's file and are dropped.
func ToPathInfo(ni *narinfo.NarInfo, root *castorev1.Node) (*storev1.PathInfo, error) {
	if ni.NarHash.Algo != nixhash.SHA256 || len(ni.NarHash.Digest) != 32 {
		return nil, fmt.Errorf("narinfo %s: NarHash is not sha256", ni.StorePath)
	}
	info := &storev1.PathInfo{
		Node: castore.RenameNode(root, []byte(ni.StorePath.Basename())),
		Narinfo: &storev1.NARInfo{
			NarSize:   ni.NarSize,
			NarSha256: append([]byte(nil), ni.NarHash.Digest...),
		},
	}
	for _, r := range ni.References {
		info.References = append(info.References, append([]byte(nil), r.Digest[:]...))
		info.Narinfo.ReferenceNames = append(info.Narinfo.ReferenceNames, r.Basename())
	}
	for _, s := range ni.Signatures {
		info.Narinfo.Signatures = append(info.Narinfo.Signatures, &storev1.NARInfo_Signature{Name: s.Name, Data: append([]byte(nil), s.Data...)})
	}
	if ni.Deriver != nil {
		info.Narinfo.Deriver = &storev1.StorePath{
			Name:   strings.TrimSuffix(ni.Deriver.Name, ".drv"),
			Digest: append([]byte(nil), ni.Deriver.Digest[:]...),
		}
	}
	if ni.CA != nil {
		ca, err := caToProto(*ni.CA)
		if err != nil {
			return nil, fmt.Errorf("narinfo %s: %w", ni.StorePath, err)
		}
		info.Narinfo.Ca = ca
	}
	if _, err := pathinfo.Validate(info); err != nil {
		return nil, fmt.Errorf("narinfo %s: %w", ni.StorePath, err)
	}
	return info, nil
}

// ToNarInfo builds the narinfo of info, without URL and compression (the
// caller knows where it serves the NAR).
func ToNarInfo(info *storev1.PathInfo) (*narinfo.NarInfo, error) {
	sp, err := pathinfo.Validate(info)
	if err != nil {
		return nil, err
	}
	pni := info.GetNarinfo()
	h, err := nixhash.New(nixhash.SHA256, pni.GetNarSha256())
	if err != nil {
		return nil, fmt.Errorf("path info %s: NAR hash: %w", sp, err)
	}
	ni := &narinfo.NarInfo{StorePath: sp, NarHash: h, NarSize: pni.GetNarSize()}
	for _, name := range pni.GetReferenceNames() {
		r, err := storepath.FromBasename(name)
		if err != nil {
			return nil, fmt.Errorf("path info %s: reference: %w", sp, err)
		}
		ni.References = append(ni.References, r)
	}
	for _, s := range pni.GetSignatures() {
		ni.Signatures = append(ni.Signatures, narinfo.Signature{Name: s.GetName(), Data: append([]byte(nil), s.GetData()...)})
	}
	if d := pni.GetDeriver(); d != nil {
		var p storepath.StorePath
		copy(p.Digest[:], d.GetDigest())
		p.Name = d.GetName() + ".drv"
		ni.Deriver = &p
	}
	if c := pni.GetCa(); c != nil {
		ca, err := caFromProto(c)
		if err != nil {
			return nil, fmt.Errorf("path info %s: %w", sp, err)
		}
		ni.CA = &ca
	}
	return ni, nil
}

type caKind struct {
	m nixhash.Method
	a nixhash.Algo
}

var caTypes = map[caKind]storev1.NARInfo_CA_Hash{
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

func caToProto(c nixhash.CA) (*storev1.NARInfo_CA, error) {
	t, ok := caTypes[caKind{c.Method, c.Hash.Algo}]
	if !ok {
		return nil, fmt.Errorf("content address %s has no PathInfo encoding", c)
	}
	return &storev1.NARInfo_CA{Type: t, Digest: append([]byte(nil), c.Hash.Digest...)}, nil
}

func caFromProto(c *storev1.NARInfo_CA) (nixhash.CA, error) {
	for k, t := range caTypes {
		if t == c.GetType() {
			h, err := nixhash.New(k.a, c.GetDigest())
			if err != nil {
				return nixhash.CA{}, fmt.Errorf("content address %v: %w", c.GetType(), err)
			}
			return nixhash.CA{Method: k.m, Hash: h}, nil
		}
	}
	return nixhash.CA{}, fmt.Errorf("unknown content address type %v", c.GetType())
}
