package castoretest

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
)

func putAll(s castore.DirectoryService, dirs ...*castorev1.Directory) (castore.Digest, error) {
	p := s.PutMultiple(context.Background())
	for _, d := range dirs {
		if err := p.Put(d); err != nil {
			return castore.Digest{}, err
		}
	}
	return p.Close()
}

// RunDirectoryService runs the suite against fresh services.
func RunDirectoryService(t *testing.T, newService func(t *testing.T) castore.DirectoryService) {
	ctx := context.Background()
	t.Run("closure round trip", func(t *testing.T) {
		s := newService(t)
		root, err := putAll(s, DirectoryA, DirectoryWithKeep, DirectoryB, DirectoryComplicated, DirectoryD)
		if err == nil {
			t.Fatalf("closure with two roots accepted (root %s)", root)
		}
		root, err = putAll(s, DirectoryA, DirectoryB, DirectoryD)
		if err != nil || root != castore.DirectoryDigest(DirectoryD) {
			t.Fatalf("PutMultiple = %s, %v", root, err)
		}
		var got []castore.Digest
		for d, err := range s.GetRecursive(ctx, root) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, castore.DirectoryDigest(d))
		}
		want := []castore.Digest{castore.DirectoryDigest(DirectoryD), castore.DirectoryDigest(DirectoryA), castore.DirectoryDigest(DirectoryB)}
		if len(got) != len(want) {
			t.Fatalf("GetRecursive returned %d directories, want %d (each once)", len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("GetRecursive order %v, want root first then breadth-first %v", got, want)
			}
		}
		d, err := s.Get(ctx, castore.DirectoryDigest(DirectoryB))
		if err != nil || !proto.Equal(d, DirectoryB) {
			t.Fatalf("Get(B) = %v, %v", d, err)
		}
	})
	t.Run("missing child refused whole", func(t *testing.T) {
		s := newService(t)
		if _, err := putAll(s, DirectoryWithKeep, DirectoryB); err == nil || !strings.Contains(err.Error(), "neither sent before it nor stored") {
			t.Fatalf("closure with missing child = %v, want refusal", err)
		}
		if _, err := s.Get(ctx, castore.DirectoryDigest(DirectoryWithKeep)); !errors.Is(err, castore.ErrNotFound) {
			t.Fatalf("part of a refused closure is visible: %v", err)
		}
		if _, err := s.Put(ctx, DirectoryB); err == nil {
			t.Fatal("single Put with missing child accepted")
		}
	})
	t.Run("wrong child size refused", func(t *testing.T) {
		s := newService(t)
		bad := proto.Clone(DirectoryD).(*castorev1.Directory)
		bad.Directories[1].Size = 7
		if _, err := putAll(s, DirectoryA, DirectoryB, bad); err == nil || !strings.Contains(err.Error(), "does not match") {
			t.Fatalf("wrong size = %v, want refusal", err)
		}
	})
	t.Run("single put with stored children", func(t *testing.T) {
		s := newService(t)
		if _, err := s.Put(ctx, DirectoryA); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Put(ctx, DirectoryB); err != nil {
			t.Fatalf("Put(B) with A stored: %v", err)
		}
		if _, err := s.Get(ctx, castore.Digest{9}); !errors.Is(err, castore.ErrNotFound) {
			t.Fatalf("Get(unknown) = %v", err)
		}
	})
	t.Run("invalid directory refused", func(t *testing.T) {
		s := newService(t)
		bad := &castorev1.Directory{Files: []*castorev1.FileNode{{Name: []byte("b"), Digest: make([]byte, 32)}, {Name: []byte("a"), Digest: make([]byte, 32)}}}
		if _, err := s.Put(ctx, bad); err == nil || !strings.Contains(err.Error(), "not sorted") {
			t.Fatalf("unsorted directory = %v", err)
		}
	})
	t.Run("concurrent puts", func(t *testing.T) {
		s := newService(t)
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := putAll(s, DirectoryWithKeep, DirectoryComplicated); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	})
}
