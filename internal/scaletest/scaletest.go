// Package scaletest gives tests the real S3 server and PostgreSQL that
// `scripts/services up` started (its export lines name them): a fresh
// prefix of the bucket or a fresh schema of the database per test, so
// tests never see each other's data, and a way to restart a server
// mid-test. Without the servers a test is reported missing (a failure
// under CI=true, see internal/testenv).
package scaletest

import (
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tvix-go/tvix/internal/testenv"
)

// S3URL is TVIX_S3_URL with a prefix of its own for this test.
func S3URL(t testing.TB) string {
	t.Helper()
	raw := os.Getenv("TVIX_S3_URL")
	if raw == "" {
		testenv.Missing(t, "TVIX_S3_URL not set: eval \"$(scripts/services up)\" first")
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("TVIX_S3_URL: %v", err)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/" + Unique(t)
	return u.String()
}

// PGURL is TVIX_PG_URL naming a schema of its own for this test.
func PGURL(t testing.TB) string {
	t.Helper()
	raw := os.Getenv("TVIX_PG_URL")
	if raw == "" {
		testenv.Missing(t, "TVIX_PG_URL not set: eval \"$(scripts/services up)\" first")
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("TVIX_PG_URL: %v", err)
	}
	q := u.Query()
	q.Set("schema", strings.ReplaceAll(Unique(t), "-", "_"))
	u.RawQuery = q.Encode()
	return u.String()
}

// Unique is a name for this test's data: its name (lowercased, what S3
// keys and SQL identifiers allow) and random bytes.
func Unique(t testing.TB) string {
	var b [4]byte
	rand.Read(b[:])
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return '-'
	}, t.Name())
	if len(name) > 40 {
		name = name[:40]
	}
	return "t-" + name + "-" + hex.EncodeToString(b[:])
}

// Services runs scripts/services with args (e.g. "restart", "s3").
func Services(t testing.TB, args ...string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(repoRoot(t), "scripts", "services"), args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/services %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func repoRoot(t testing.TB) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}
