package layering

import (
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/tvix-go/tvix/"

// mayImport lists, for each part of the tree (a package path or a prefix
// ending in "/"), the parts its packages may import. It mirrors the map in
// docs/design.md; the first matching entry wins.
var mayImport = []struct {
	part string
	may  []string
}{
	{"internal/", []string{"internal/"}},
	{"nix/", []string{"nix/"}},
	{"castore/", []string{"castore/", "castore", "internal/"}},
	{"castore", []string{"castore/castorev1"}},
	{"store/", []string{"store/", "castore/", "castore", "nix/", "internal/"}},
	{"eval/", []string{"eval/", "eval", "nix/"}},
	{"eval", []string{"eval/", "nix/"}},
	{"build/", []string{"build/", "build", "castore/", "castore", "nix/", "internal/", "boot", "boot/", "store/narcastore"}},
	{"build", []string{"build/", "castore/", "castore", "nix/", "internal/"}},
	{"glue", []string{"eval/", "eval", "store/", "castore/", "castore", "nix/", "build/", "build", "internal/"}},
	{"virtiofs", []string{"castore/", "castore", "internal/"}},
	{"nbd", []string{"castore/", "castore", "internal/"}},
	{"boot/", []string{"boot/", "virtiofs", "nbd", "castore/", "castore", "internal/", "build/buildv1", "build", "nix/"}},
	{"boot", []string{"boot/", "virtiofs", "nbd", "castore/", "castore", "internal/"}},
	{"daemon", []string{"castore/", "castore", "nix/", "store/", "eval/", "eval", "glue", "virtiofs", "nbd", "boot/", "boot", "build/", "build", "internal/"}},
	{"cmd/", nil}, // anything
}

func matches(pkg, part string) bool {
	if strings.HasSuffix(part, "/") {
		return strings.HasPrefix(pkg, part)
	}
	return pkg == part
}

// touchSources opens every Go file of the module, so go test's cache
// counts them as the test's inputs: the imports come from `go list`,
// which the cache cannot see, and a cached pass would hide a new import.
func touchSources(t *testing.T) {
	err := filepath.WalkDir("../..", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".go") {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			f.Close()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestImportsFollowThePackageMap(t *testing.T) {
	touchSources(t)
	out, err := exec.Command("go", "list", "-json=ImportPath,Imports", "github.com/tvix-go/tvix/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	checked := 0
	for {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkg := strings.TrimPrefix(p.ImportPath, module)
		var rule *[]string
		for i := range mayImport {
			if matches(pkg, mayImport[i].part) {
				rule = &mayImport[i].may
				break
			}
		}
		if rule == nil {
			t.Errorf("package %s is not on the map (docs/design.md, mayImport)", pkg)
			continue
		}
		checked++
		if *rule == nil {
			continue
		}
		for _, imp := range p.Imports {
			dep, ok := strings.CutPrefix(imp, module)
			if !ok {
				continue
			}
			allowed := false
			for _, part := range *rule {
				if matches(dep, part) {
					allowed = true
					break
				}
			}
			if !allowed {
				t.Errorf("%s imports %s, which its layer may not (docs/design.md)", pkg, dep)
			}
		}
	}
	if checked < 30 {
		t.Fatalf("checked only %d packages", checked)
	}
}
