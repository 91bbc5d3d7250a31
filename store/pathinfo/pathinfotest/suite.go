// Package pathinfotest holds the conformance suite every PathInfoService
// backend must pass (memory, bbolt, gRPC, PostgreSQL).
package pathinfotest

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/pathinfo"
	"github.com/tvix-go/tvix/store/storev1"
)

// SampleInfo is a valid PathInfo of a one-byte file named basename,
// referring to refs (store path basenames).
func SampleInfo(t *testing.T, basename string, refs ...string) *storev1.PathInfo {
	t.Helper()
	info := &storev1.PathInfo{
		Node: &castorev1.Node{Node: &castorev1.Node_File{File: &castorev1.FileNode{
			Name: []byte(basename), Digest: castore.HashBlob([]byte("x")).Bytes(), Size: 1}}},
		Narinfo: &storev1.NARInfo{NarSize: 120, NarSha256: make([]byte, 32)},
	}
	for _, r := range refs {
		sp, err := storepath.FromBasename(r)
		if err != nil {
			t.Fatal(err)
		}
		info.References = append(info.References, sp.Digest[:])
		info.Narinfo.ReferenceNames = append(info.Narinfo.ReferenceNames, r)
	}
	return info
}

// RunService checks a fresh service: Put, Get, List, validation, and that
// a recorded path is immutable (conflicting puts refused, signatures
// merged).
func RunService(t *testing.T, svc pathinfo.Service) {
	ctx := context.Background()
	a := SampleInfo(t, "00bgd045z0d4icpbc2yyz4gx48ak44la-a")
	b := SampleInfo(t, "1c5b8vw40dy178xlpddw65q9gf1h2186-b", "00bgd045z0d4icpbc2yyz4gx48ak44la-a")
	for _, info := range []*storev1.PathInfo{a, b} {
		if _, err := svc.Put(ctx, info); err != nil {
			t.Fatal(err)
		}
	}
	sp, _ := storepath.FromBasename("1c5b8vw40dy178xlpddw65q9gf1h2186-b")
	got, err := svc.Get(ctx, sp.Digest)
	if err != nil || !proto.Equal(got, b) {
		t.Fatalf("Get = %v, %v", got, err)
	}
	if _, err := svc.Get(ctx, [20]byte{7}); !errors.Is(err, pathinfo.ErrNotFound) {
		t.Fatalf("Get(unknown) = %v", err)
	}
	n := 0
	for _, err := range svc.List(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 2 {
		t.Fatalf("List gave %d, want 2", n)
	}
	bad := []func(*storev1.PathInfo){
		func(i *storev1.PathInfo) { i.Node = nil },
		func(i *storev1.PathInfo) { i.Node.GetFile().Name = []byte("not-a-store-path") },
		func(i *storev1.PathInfo) { i.Narinfo.NarSha256 = []byte{1} },
		func(i *storev1.PathInfo) { i.References = append(i.References, []byte{1, 2}) },
		func(i *storev1.PathInfo) { i.Narinfo.ReferenceNames[0] = "1c5b8vw40dy178xlpddw65q9gf1h2186-b" },
		func(i *storev1.PathInfo) { i.Narinfo = nil },
	}
	for k, mutate := range bad {
		info := proto.Clone(b).(*storev1.PathInfo)
		mutate(info)
		if _, err := svc.Put(ctx, info); err == nil || !strings.Contains(err.Error(), "invalid path info") {
			t.Errorf("bad path info %d accepted or unclear error: %v", k, err)
		}
	}
	immutableSuite(t, svc, b)
}

// immutableSuite: a put contradicting the recorded b is refused with
// pathinfo.ErrConflict and changes nothing; one that agrees merges its signatures.
func immutableSuite(t *testing.T, svc pathinfo.Service, b *storev1.PathInfo) {
	ctx := context.Background()
	sp, _ := storepath.FromBasename(string(castore.NodeName(b.GetNode())))
	sig := func(name string, fill byte) *storev1.NARInfo_Signature {
		return &storev1.NARInfo_Signature{Name: name, Data: bytes.Repeat([]byte{fill}, 64)}
	}
	conflicting := map[string]func(*storev1.PathInfo){
		"NarHash":    func(i *storev1.PathInfo) { i.Narinfo.NarSha256 = bytes.Repeat([]byte{9}, 32) },
		"NarSize":    func(i *storev1.PathInfo) { i.Narinfo.NarSize++ },
		"References": func(i *storev1.PathInfo) { i.References, i.Narinfo.ReferenceNames = nil, nil },
		"root node":  func(i *storev1.PathInfo) { i.Node.GetFile().Digest = castore.HashBlob([]byte("y")).Bytes() },
		"CA": func(i *storev1.PathInfo) {
			i.Narinfo.Ca = &storev1.NARInfo_CA{Type: storev1.NARInfo_CA_NAR_SHA256, Digest: make([]byte, 32)}
		},
		"Deriver": func(i *storev1.PathInfo) {
			i.Narinfo.Deriver = &storev1.StorePath{Name: "b.drv", Digest: bytes.Repeat([]byte{1}, 20)}
		},
	}
	for what, mutate := range conflicting {
		info := proto.Clone(b).(*storev1.PathInfo)
		mutate(info)
		info.Narinfo.Signatures = []*storev1.NARInfo_Signature{sig("evil-1", 6)}
		if _, err := svc.Put(ctx, info); !errors.Is(err, pathinfo.ErrConflict) || !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(what)) {
			t.Errorf("put with another %s: %v, want pathinfo.ErrConflict naming it", what, err)
		}
	}
	if got, err := svc.Get(ctx, sp.Digest); err != nil || !proto.Equal(got, b) {
		t.Fatalf("refused puts changed the record: %v, %v", got, err)
	}
	same := proto.Clone(b).(*storev1.PathInfo)
	same.Narinfo.Signatures = []*storev1.NARInfo_Signature{sig("one-1", 1)}
	if _, err := svc.Put(ctx, same); err != nil {
		t.Fatalf("agreeing put: %v", err)
	}
	same.Narinfo.Signatures = []*storev1.NARInfo_Signature{sig("one-1", 1), sig("two-1", 2)}
	out, err := svc.Put(ctx, same)
	if err != nil {
		t.Fatalf("agreeing put: %v", err)
	}
	got, err := svc.Get(ctx, sp.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(got.GetNarinfo().GetSignatures()); n != 2+len(b.GetNarinfo().GetSignatures()) || !proto.Equal(got, out) {
		t.Fatalf("after agreeing puts: %d signatures (want each once), Put returned %v, Get %v", n, out, got)
	}
}
