package eval

import (
	"io/fs"
	"path"
	"sort"
	"strings"
)

// MemIO is an in-memory IO for tests: file path -> contents. Directories
// exist implicitly as parents of files.
type MemIO map[string]string

func (m MemIO) ReadFile(p string) ([]byte, error) {
	if s, ok := m[p]; ok {
		return []byte(s), nil
	}
	return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
}

func (m MemIO) isDir(p string) bool {
	prefix := strings.TrimSuffix(p, "/") + "/"
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}

func (m MemIO) PathExists(p string) (bool, error) {
	_, ok := m[p]
	return ok || m.isDir(p), nil
}

func (m MemIO) FileType(p string) (FileType, error) {
	if _, ok := m[p]; ok {
		return FileRegular, nil
	}
	if m.isDir(p) {
		return FileDirectory, nil
	}
	return FileUnknown, &fs.PathError{Op: "lstat", Path: p, Err: fs.ErrNotExist}
}

func (m MemIO) ReadDir(p string) ([]DirEntry, error) {
	if !m.isDir(p) {
		return nil, &fs.PathError{Op: "readdir", Path: p, Err: fs.ErrNotExist}
	}
	prefix := strings.TrimSuffix(p, "/") + "/"
	seen := map[string]FileType{}
	for k := range m {
		rest, ok := strings.CutPrefix(k, prefix)
		if !ok {
			continue
		}
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			seen[rest[:i]] = FileDirectory
		} else {
			seen[path.Clean(rest)] = FileRegular
		}
	}
	out := make([]DirEntry, 0, len(seen))
	for n, t := range seen {
		out = append(out, DirEntry{Name: n, Type: t})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
