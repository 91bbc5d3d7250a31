package boot

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// moduleName is the kernel's name for a module file: basename without
// .ko[.xz|.zst|.gz], dashes as underscores.
func moduleName(path string) string {
	b := filepath.Base(path)
	for _, ext := range []string{".xz", ".zst", ".gz"} {
		b = strings.TrimSuffix(b, ext)
	}
	b = strings.TrimSuffix(b, ".ko")
	return strings.ReplaceAll(b, "-", "_")
}

// moduleDB is what modules.dep and modules.builtin say about one kernel.
type moduleDB struct {
	dir     string
	path    map[string]string   // name → path relative to dir
	deps    map[string][]string // name → dependency names, as listed
	builtin map[string]bool
}

func loadModuleDB(dir string) (*moduleDB, error) {
	db := &moduleDB{dir: dir, path: map[string]string{}, deps: map[string][]string{}, builtin: map[string]bool{}}
	f, err := os.Open(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("read module index: %w", err)
	}
	defer f.Close()
	if err := db.parseDep(f); err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	if b, err := os.Open(filepath.Join(dir, "modules.builtin")); err == nil {
		defer b.Close()
		sc := bufio.NewScanner(b)
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); l != "" {
				db.builtin[moduleName(l)] = true
			}
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("%s: %w", b.Name(), err)
		}
	}
	return db, nil
}

func (db *moduleDB) parseDep(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		mod, deps, ok := strings.Cut(l, ":")
		if !ok || strings.TrimSpace(mod) == "" {
			return fmt.Errorf("line %d: want \"module.ko: deps...\", got %q", line, l)
		}
		mod = strings.TrimSpace(mod)
		n := moduleName(mod)
		db.path[n] = mod
		var ds []string
		for _, d := range strings.Fields(deps) {
			ds = append(ds, moduleName(d))
			if _, ok := db.path[moduleName(d)]; !ok {
				db.path[moduleName(d)] = d
			}
		}
		db.deps[n] = ds
	}
	return sc.Err()
}

// resolve returns the module files (relative to db.dir) to load, in load
// order, for the named modules and their dependencies; built-in modules
// are left out.
func (db *moduleDB) resolve(names []string) ([]string, error) {
	var order []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(n string, from string) error
	visit = func(n, from string) error {
		n = strings.ReplaceAll(n, "-", "_")
		switch state[n] {
		case 1:
			return fmt.Errorf("module %s: dependency cycle", n)
		case 2:
			return nil
		}
		if db.builtin[n] {
			state[n] = 2
			return nil
		}
		p, ok := db.path[n]
		if !ok {
			if from != "" {
				return fmt.Errorf("module %s (needed by %s) is neither in modules.dep nor built in (%s)", n, from, db.dir)
			}
			return fmt.Errorf("module %s is neither in modules.dep nor built into the kernel (%s)", n, db.dir)
		}
		state[n] = 1
		// modules.dep lists the deepest dependency last; modprobe loads
		// from the end. Recursing handles any order.
		deps := db.deps[n]
		for i := len(deps) - 1; i >= 0; i-- {
			if err := visit(deps[i], n); err != nil {
				return err
			}
		}
		state[n] = 2
		order = append(order, p)
		return nil
	}
	for _, n := range names {
		if err := visit(n, ""); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// openModule opens a module file, decompressing .xz, .zst and .gz, so
// the init can hand plain ELF to finit_module.
func openModule(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open module: %w", err)
	}
	var r io.Reader
	switch {
	case strings.HasSuffix(path, ".xz"):
		r, err = xz.NewReader(bufio.NewReader(f))
	case strings.HasSuffix(path, ".zst"):
		var d *zstd.Decoder
		d, err = zstd.NewReader(f, zstd.WithDecoderConcurrency(1))
		if err == nil {
			return struct {
				io.Reader
				io.Closer
			}{d, closerFunc(func() error { d.Close(); return f.Close() })}, nil
		}
	case strings.HasSuffix(path, ".gz"):
		r, err = gzip.NewReader(f)
	default:
		return f, nil
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("decompress module %s: %w", path, err)
	}
	return struct {
		io.Reader
		io.Closer
	}{r, f}, nil
}

type closerFunc func() error

func (c closerFunc) Close() error { return c() }

// moduleSize returns the decompressed size of a module file.
func moduleSize(path string) (int64, error) {
	if !strings.HasSuffix(path, ".xz") && !strings.HasSuffix(path, ".zst") && !strings.HasSuffix(path, ".gz") {
		fi, err := os.Stat(path)
		if err != nil {
			return 0, fmt.Errorf("stat module: %w", err)
		}
		return fi.Size(), nil
	}
	r, err := openModule(path)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	n, err := io.Copy(io.Discard, r)
	if err != nil {
		return 0, fmt.Errorf("decompress module %s: %w", path, err)
	}
	return n, nil
}
