package eval

import (
	"errors"
	"io/fs"
	"os"
	"strings"
)

// FileType is what readDir / readFileType report.
type FileType int

const (
	FileUnknown FileType = iota
	FileRegular
	FileDirectory
	FileSymlink
)

func (t FileType) String() string {
	switch t {
	case FileRegular:
		return "regular"
	case FileDirectory:
		return "directory"
	case FileSymlink:
		return "symlink"
	}
	return "unknown"
}

// DirEntry is one entry of a directory listing.
type DirEntry struct {
	Name string
	Type FileType
}

// IO is how the evaluator reaches files. The CLI passes the real file
// system (OSIO); tests can pass an in-memory one.
type IO interface {
	ReadFile(path string) ([]byte, error)
	PathExists(path string) (bool, error)
	ReadDir(path string) ([]DirEntry, error)
	// FileType does not follow a final symlink.
	FileType(path string) (FileType, error)
}

// ReadlinkIO and ExecutableIO are optional extensions of IO, used when a
// path is serialised (NAR) to compute its store path.
type ReadlinkIO interface {
	Readlink(path string) (string, error)
}

type ExecutableIO interface {
	IsExecutable(path string) (bool, error)
}

// OSIO is IO on the local file system.
type OSIO struct{}

func (OSIO) Readlink(p string) (string, error) { return os.Readlink(p) }

func (OSIO) IsExecutable(p string) (bool, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return false, err
	}
	return fi.Mode()&0o111 != 0, nil
}

func (OSIO) ReadFile(p string) ([]byte, error) { return readFile(p) }

func (OSIO) PathExists(p string) (bool, error) {
	_, err := os.Lstat(p)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrInvalid) {
		return false, nil
	}
	if pe := new(fs.PathError); errors.As(err, &pe) && strings.Contains(err.Error(), "not a directory") {
		return false, nil
	}
	return false, err
}

func (OSIO) ReadDir(p string) ([]DirEntry, error) {
	es, err := os.ReadDir(p)
	if err != nil {
		return nil, err
	}
	out := make([]DirEntry, len(es))
	for i, e := range es {
		out[i] = DirEntry{Name: e.Name(), Type: modeType(e.Type())}
	}
	return out, nil
}

func (OSIO) FileType(p string) (FileType, error) { return lstatType(p) }

func modeType(m fs.FileMode) FileType {
	switch {
	case m.IsRegular():
		return FileRegular
	case m.IsDir():
		return FileDirectory
	case m&fs.ModeSymlink != 0:
		return FileSymlink
	}
	return FileUnknown
}

func ioErrText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	if errors.Is(err, fs.ErrNotExist) {
		return "No such file or directory"
	}
	s := err.Error()
	if s != "" {
		s = strings.ToUpper(s[:1]) + s[1:]
	}
	return s
}
