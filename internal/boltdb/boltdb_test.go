package boltdb

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestHelperOpen runs in a child process to open a database the parent holds.
func TestHelperOpen(t *testing.T) {
	path := os.Getenv("BOLTDB_HELPER_PATH")
	if path == "" {
		t.Skip("helper process only")
	}
	_, err := Open(path, "x")
	if err == nil {
		os.Exit(0)
	}
	os.Stderr.WriteString(err.Error())
	os.Exit(3)
}

func TestSecondProcessGetsClearErrorAtOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db.bolt")
	db, err := Open(path, "x")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperOpen$")
	cmd.Env = append(os.Environ(), "BOLTDB_HELPER_PATH="+path)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatal("second process opened a held database")
	}
	if !strings.Contains(string(out), "store in use by another process") || !strings.Contains(string(out), "grpc+unix://") {
		t.Fatalf("second process error = %q", out)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("second process blocked for %s", time.Since(start))
	}
}

func TestRefusesUnknownFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db.bolt")
	raw, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw.Update(func(tx *bolt.Tx) error {
		b, _ := tx.CreateBucketIfNotExists([]byte(metaBucket))
		return b.Put([]byte(formatKey), []byte("tvix-go bbolt v99"))
	})
	raw.Close()
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "unknown store format") {
		t.Fatalf("Open(v99) = %v", err)
	}
}
