package eval

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// readFile must read what os.ReadFile reads and fail where and as it fails.
func TestReadFileAsOSReadFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 10000)
	cases := []struct{ name, path string }{
		{"empty", write("empty.nix", nil)},
		{"small", write("small.nix", []byte("{ x = 1; }\n"))},
		{"big", write("big.nix", big)},
		{"missing", filepath.Join(dir, "missing.nix")},
		{"directory", dir},
		{"not a directory", filepath.Join(dir, "small.nix", "x")},
		{"regular but sized 0 (procfs)", "/proc/version"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := readFile(c.path)
			want, wantErr := os.ReadFile(c.path)
			if (err == nil) != (wantErr == nil) {
				t.Fatalf("error %v, os.ReadFile's %v", err, wantErr)
			}
			if err != nil {
				if err.Error() != wantErr.Error() || ioErrText(err) != ioErrText(wantErr) {
					t.Errorf("error %q (%s), os.ReadFile's %q (%s)", err, ioErrText(err), wantErr, ioErrText(wantErr))
				}
				var pe *fs.PathError
				if !errors.As(err, &pe) || pe.Path != c.path {
					t.Errorf("error %v is not a *fs.PathError for %s", err, c.path)
				}
				return
			}
			if !bytes.Equal(got, want) {
				t.Errorf("read %d bytes, os.ReadFile %d", len(got), len(want))
			}
		})
	}
}
