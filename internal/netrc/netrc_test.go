package netrc

import (
	"os"
	"path/filepath"
	"testing"
)

func TestLookupNetrc(t *testing.T) {
	p := filepath.Join(t.TempDir(), "netrc")
	os.WriteFile(p, []byte("# comment\nmachine cache.example.org login alice password s3cret\nmachine other login bob password x\ndefault login anon password none\n"), 0o600)
	for host, want := range map[string]Entry{
		"cache.example.org": {"alice", "s3cret"},
		"other":             {"bob", "x"},
		"elsewhere":         {"anon", "none"},
	} {
		got, err := Lookup(p, host)
		if err != nil || got != want {
			t.Errorf("Lookup(%s) = %+v, %v; want %+v", host, got, err, want)
		}
	}
	if got, err := Lookup(filepath.Join(t.TempDir(), "absent"), "x"); err != nil || got.Login != "" {
		t.Errorf("missing netrc = %+v, %v", got, err)
	}
}
