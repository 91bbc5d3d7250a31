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

// OSIO.FileType (lstatType on Linux) must tell what os.Lstat tells and
// fail where and as it fails, for paths in and past its stack buffer.
func TestFileTypeAsOSLstat(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f.nix")
	if err := os.WriteFile(file, []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "l")
	if err := os.Symlink("f.nix", link); err != nil {
		t.Fatal(err)
	}
	long := dir
	for len(long) < 600 {
		long = filepath.Join(long, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
	}
	if err := os.MkdirAll(long, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, path string
		want       FileType
	}{
		{"regular", file, FileRegular},
		{"directory", dir, FileDirectory},
		{"symlink, not followed", link, FileSymlink},
		{"device", "/dev/null", FileUnknown},
		{"longer than the stack buffer", long, FileDirectory},
		{"missing", filepath.Join(dir, "missing"), FileUnknown},
		{"not a directory", filepath.Join(file, "x"), FileUnknown},
		{"with a NUL", dir + "\x00x", FileUnknown},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := OSIO{}.FileType(c.path)
			_, osErr := os.Lstat(c.path)
			if (err == nil) != (osErr == nil) {
				t.Fatalf("FileType error %v, os.Lstat error %v", err, osErr)
			}
			if err != nil {
				var pe, ope *fs.PathError
				if !errors.As(err, &pe) || !errors.As(osErr, &ope) || pe.Op != ope.Op || pe.Path != ope.Path || !errors.Is(pe.Err, ope.Err) {
					t.Fatalf("FileType error %#v, os.Lstat's %#v", err, osErr)
				}
			}
			if got != c.want {
				t.Fatalf("FileType = %v, want %v", got, c.want)
			}
		})
	}
}
