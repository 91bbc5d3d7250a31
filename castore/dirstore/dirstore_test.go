package dirstore

import (
	"path/filepath"
	"testing"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castoretest"
)

func TestMemory(t *testing.T) {
	castoretest.RunDirectoryService(t, func(*testing.T) castore.DirectoryService { return NewMemory() })
}

func TestBolt(t *testing.T) {
	castoretest.RunDirectoryService(t, func(t *testing.T) castore.DirectoryService {
		s, err := NewBolt(filepath.Join(t.TempDir(), "db.bolt"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestBoltSharedWithinProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db.bolt")
	a, err := NewBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := NewBolt(path)
	if err != nil {
		t.Fatalf("second open in the same process: %v", err)
	}
	b.Close()
	if _, err := a.Put(t.Context(), castoretest.DirectoryA); err != nil {
		t.Fatalf("first handle unusable after second closed: %v", err)
	}
}
