package closure_test

import (
	"context"
	"strings"
	"testing"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/blobstore"
	"github.com/tvix-go/tvix/castore/combined"
	"github.com/tvix-go/tvix/castore/dirstore"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/closure"
	"github.com/tvix-go/tvix/store/importer"
	"github.com/tvix-go/tvix/store/nixcache"
	"github.com/tvix-go/tvix/store/pathinfo"
)

func memoryStore() closure.Store {
	return closure.Store{Blobs: blobstore.NewMemory(), Dirs: dirstore.NewMemory(), PathInfos: pathinfo.NewMemory()}
}

// chain adds a -> b -> c (each referring to the next) and returns a, b, c.
func chain(t *testing.T, s closure.Store) []storepath.StorePath {
	t.Helper()
	ctx := context.Background()
	im := importer.Store{Blobs: s.Blobs, Dirs: s.Dirs, PathInfo: s.PathInfos}
	c, _, err := im.AddText(ctx, "c", []byte("leaf"), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := im.AddText(ctx, "b", []byte("b refers to "+c.String()), []storepath.StorePath{c})
	if err != nil {
		t.Fatal(err)
	}
	a, _, err := im.AddText(ctx, "a", []byte("a refers to "+b.String()), []storepath.StorePath{b})
	if err != nil {
		t.Fatal(err)
	}
	return []storepath.StorePath{a, b, c}
}

// Copying from a tvix upstream (read-through castore) fetches the whole
// closure and makes its blobs local, so the upstream can go away.
func TestCopyMaterializes(t *testing.T) {
	ctx := context.Background()
	up := memoryStore()
	paths := chain(t, up)
	local := memoryStore()
	near := local.Blobs
	s := closure.Store{
		Blobs:     combined.Blobs{Near: near, Far: up.Blobs},
		Dirs:      combined.Directories{Near: local.Dirs, Far: up.Dirs},
		PathInfos: &nixcache.Composite{Local: local.PathInfos, Substituters: []pathinfo.Service{up.PathInfos}},
	}
	var seen []string
	n, _, err := closure.Copy(ctx, s, paths[:1], func(_ int, _ uint64, p string) { seen = append(seen, p) })
	if err != nil || n != 3 || len(seen) != 3 {
		t.Fatalf("Copy: %d paths (%v), %v", n, seen, err)
	}
	alone := closure.Store{Blobs: near, Dirs: local.Dirs, PathInfos: local.PathInfos}
	req, err := closure.Requisites(ctx, alone, paths[:1])
	if err != nil || len(req) != 3 {
		t.Fatalf("requisites in the local store alone: %v, %v", req, err)
	}
	var told, narBytes, read uint64
	rep, err := closure.VerifyWithProgress(ctx, alone, true, func(msg string) { t.Error(msg) }, closure.VerifyProgress{
		Read:    func(n int) { read += uint64(n) },
		Checked: func(n uint64) { told++; narBytes += n },
	})
	if err != nil || rep.Paths != 3 || rep.Damaged != 0 || rep.Problems != 0 || rep.Blobs == 0 || rep.Bytes == 0 {
		t.Fatalf("verify the copy: %+v, %v", rep, err)
	}
	var want uint64
	for _, p := range paths {
		info, _ := local.PathInfos.Get(ctx, p.Digest)
		want += info.GetNarinfo().GetNarSize()
	}
	if told != 3 || narBytes != want || read != want {
		t.Fatalf("verify progress: told of %d paths, %d NAR bytes, %d read; want 3, %d, %d", told, narBytes, read, want, want)
	}
}

// Verify names a path whose blob is gone.
func TestVerifyReportsMissingContents(t *testing.T) {
	ctx := context.Background()
	full := memoryStore()
	paths := chain(t, full)
	// The same path infos over an empty castore.
	broken := closure.Store{Blobs: blobstore.NewMemory(), Dirs: full.Dirs, PathInfos: full.PathInfos}
	for _, contents := range []bool{false, true} {
		var msgs []string
		rep, err := closure.Verify(ctx, broken, contents, func(msg string) { msgs = append(msgs, msg) })
		if err != nil || rep.Paths != 3 || rep.Damaged != 3 {
			t.Fatalf("check-contents=%v: %+v, %v", contents, rep, err)
		}
		if !strings.Contains(strings.Join(msgs, "\n"), "path '"+paths[0].String()+"' is damaged") {
			t.Fatalf("check-contents=%v: %v", contents, msgs)
		}
	}
	if _, err := closure.Requisites(ctx, closure.Store{PathInfos: pathinfo.NewMemory()}, paths[:1]); err == nil || !strings.Contains(err.Error(), "is not in the store") {
		t.Fatalf("requisites of an unknown path: %v", err)
	}
}

// Missing names exactly the paths of a closure a store lacks.
func TestMissing(t *testing.T) {
	ctx := context.Background()
	s := memoryStore()
	paths := chain(t, s)
	if m, err := closure.Missing(ctx, s.PathInfos, paths[0]); err != nil || len(m) != 0 {
		t.Fatalf("complete closure: missing %v, %v", m, err)
	}
	// The same a and b in a store without c.
	partial := memoryStore()
	for _, p := range paths[:2] {
		info, _ := s.PathInfos.Get(ctx, p.Digest)
		if _, err := partial.PathInfos.Put(ctx, info); err != nil {
			t.Fatal(err)
		}
	}
	if m, err := closure.Missing(ctx, partial.PathInfos, paths[0]); err != nil || len(m) != 1 || m[0] != paths[2] {
		t.Fatalf("closure without c: missing %v, %v; want %s", m, err, paths[2])
	}
	if m, err := closure.Missing(ctx, memoryStore().PathInfos, paths[0]); err != nil || len(m) != 1 || m[0] != paths[0] {
		t.Fatalf("empty store: missing %v, %v; want the root alone", m, err)
	}
}

// Verify notices a path whose reference is not in the store, with or
// without checking contents.
func TestVerifyReportsIncompleteClosure(t *testing.T) {
	ctx := context.Background()
	full := memoryStore()
	paths := chain(t, full)
	// Every path info but the last of the chain, which the others reach.
	partial := pathinfo.NewMemory()
	for info, err := range full.PathInfos.List(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		if string(castore.NodeName(info.GetNode())) == paths[len(paths)-1].Basename() {
			continue
		}
		if _, err := partial.Put(ctx, info); err != nil {
			t.Fatal(err)
		}
	}
	s := closure.Store{Blobs: full.Blobs, Dirs: full.Dirs, PathInfos: partial}
	for _, contents := range []bool{false, true} {
		var msgs []string
		rep, err := closure.Verify(ctx, s, contents, func(msg string) { msgs = append(msgs, msg) })
		if err != nil || rep.Paths != 2 || rep.Damaged != 1 || rep.Problems != 1 {
			t.Fatalf("check-contents=%v: %+v, %v (%v)", contents, rep, err, msgs)
		}
		if !strings.Contains(msgs[0], "is incomplete") || !strings.Contains(msgs[0], paths[len(paths)-1].String()) {
			t.Fatalf("check-contents=%v: %v", contents, msgs)
		}
	}
}
