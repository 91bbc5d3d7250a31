package registry

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/combined"
	"github.com/tvix-go/tvix/store/nixcache"
)

func TestBuiltinSchemesAreUnique(t *testing.T) {
	if _, err := New(BuiltinSchemes()...); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Scheme{Name: "x"}, Scheme{Name: "x"}); err == nil || !strings.Contains(err.Error(), "already registered") {
		t.Fatalf("duplicate scheme: %v", err)
	}
}

// Every scheme serves exactly the kinds the README's table says.
func TestSchemeKinds(t *testing.T) {
	r := Default()
	for _, tc := range []struct {
		kind Kind
		want string
	}{
		{Blob, "grpc+http grpc+https grpc+unix memory objectstore+file objectstore+s3 pack+file"},
		{Directory, "bbolt grpc+http grpc+https grpc+unix memory postgres postgresql"},
		{PathInfo, "bbolt grpc+http grpc+https grpc+unix memory nix+file nix+http nix+https postgres postgresql"},
	} {
		if got := strings.Join(r.Names(tc.kind), " "); got != tc.want {
			t.Errorf("%s schemes: %s, want %s", tc.kind, got, tc.want)
		}
	}
}

func TestBadAddresses(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, tc := range []struct {
		addrs Addrs
		want  string
	}{
		{Addrs{Blob: "nope://x", Directory: "memory://"}, `blob service "nope://x": unknown scheme "nope" (want one of grpc+http`},
		{Addrs{Blob: "/tmp/x", Directory: "memory://"}, `blob service "/tmp/x": no scheme`},
		{Addrs{Blob: "memory://", Directory: "pack+file:///x"}, `directory service "pack+file:///x": unknown scheme "pack+file"`},
		{Addrs{Blob: "pack+file://relative/x", Directory: "memory://"}, "a local path needs three slashes"},
		{Addrs{Blob: "memory://", Directory: "bbolt://" + filepath.Join(dir, "db")[1:]}, "a local path needs three slashes"},
		{Addrs{Blob: "memory://", Directory: "memory://", PathInfo: "nix+file://" + dir}, ""},
		// A mistyped cache directory is said at once, not found empty on every lookup.
		{Addrs{Blob: "memory://", Directory: "memory://", PathInfo: "nix+file:///nonexistent"}, `binary cache "nix+file:///nonexistent": stat /nonexistent: no such file or directory`},
		{Addrs{Blob: "grpc+unix://host/x", Directory: "memory://"}, "grpc+unix address needs an absolute socket path"},
		{Addrs{Blob: "grpc+http://", Directory: "memory://"}, "grpc+http address needs host:port"},
	} {
		s, err := Default().Open(ctx, tc.addrs, Substitution{})
		if tc.want == "" {
			if err != nil {
				t.Errorf("%+v: %v", tc.addrs, err)
			} else {
				s.Close()
			}
			continue
		}
		if err == nil {
			s.Close()
			t.Errorf("%+v: opened", tc.addrs)
		} else if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.addrs, err, tc.want)
		}
	}
}

// The three services of one daemon share one connection.
func TestOneConnectionPerAddress(t *testing.T) {
	ctx := context.Background()
	sock := "grpc+unix://" + filepath.Join(t.TempDir(), "d.sock")
	o := Default().NewOpener(Substitution{})
	defer o.Close()
	if _, err := o.BlobService(ctx, sock); err != nil {
		t.Fatal(err)
	}
	if _, err := o.DirectoryService(ctx, sock); err != nil {
		t.Fatal(err)
	}
	if _, err := o.PathInfoService(ctx, sock); err != nil {
		t.Fatal(err)
	}
	if len(o.conns) != 1 {
		t.Fatalf("%d connections for one address", len(o.conns))
	}
}

// A substituter that serves a castore is layered read-through; a binary
// cache is not, and needs keys (or an explicit allowance).
func TestSubstituters(t *testing.T) {
	ctx := context.Background()
	mem := Addrs{Blob: "memory://", Directory: "memory://", PathInfo: "memory://"}
	sock := "grpc+unix://" + filepath.Join(t.TempDir(), "d.sock")
	s, err := Default().Open(ctx, mem, Substitution{}, sock)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Blobs.(combined.Blobs); !ok {
		t.Errorf("blobs behind a tvix substituter are %T, want read-through", s.Blobs)
	}
	if _, ok := castore.As[castore.Syncer](s.Blobs); !ok {
		t.Error("read-through blobs lost Sync")
	}
	if _, ok := s.PathInfos.(*nixcache.Composite); !ok {
		t.Errorf("path infos are %T, want a composite", s.PathInfos)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	cache := "nix+file://" + t.TempDir()
	_, err = Default().Open(ctx, mem, Substitution{}, cache)
	var se *SubstituterError
	if !errors.As(err, &se) || se.URL != cache || !strings.Contains(err.Error(), "no --trusted-public-keys given") {
		t.Fatalf("unsigned binary cache: %v, want a SubstituterError naming %s", err, cache)
	}
	s, err = Default().Open(ctx, mem, Substitution{AllowUnsigned: true}, cache)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Blobs.(combined.Blobs); ok {
		t.Error("a binary cache was layered as a castore")
	}
	s.Close()
}
