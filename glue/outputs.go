package glue

import (
	"fmt"
	"sort"
	"strings"

	"github.com/tvix-go/tvix/eval"
	"github.com/tvix-go/tvix/nix/storepath"
)

// Selected is one derivation a value names, as nix-instantiate lists it:
// its .drv path, every output's path, and the outputs selected (the one
// an output attribute such as hello.dev picks, else all of them).
type Selected struct {
	DrvPath  string
	Outputs  map[string]string
	Selected []string // output names, sorted
}

// Derivations evaluates v the way nix-instantiate would and returns the
// derivations it names, in nix-instantiate's order.
func (g *Glue) Derivations(ev *eval.Evaluator, v eval.Value) ([]Selected, error) {
	lines, err := Instantiate(ev, v)
	if err != nil {
		return nil, err
	}
	out := make([]Selected, 0, len(lines))
	for _, l := range lines {
		drvPath, output, _ := strings.Cut(l, "!")
		d, ok := g.record(drvPath)
		if !ok {
			return nil, fmt.Errorf("derivation %s was not created by this evaluation", drvPath)
		}
		s := Selected{DrvPath: drvPath, Outputs: make(map[string]string, d.nOut)}
		for i := range d.nOut {
			name, path := d.output(i)
			s.Outputs[name] = path
			if output == "" || name == output {
				s.Selected = append(s.Selected, name)
			}
		}
		sort.Strings(s.Selected)
		out = append(out, s)
	}
	return out, nil
}

// SelectedPaths lists the selected output paths of drvs, each once.
func SelectedPaths(drvs []Selected) ([]storepath.StorePath, error) {
	seen := map[string]bool{}
	var out []storepath.StorePath
	for _, d := range drvs {
		for _, name := range d.Selected {
			p := d.Outputs[name]
			if seen[p] {
				continue
			}
			seen[p] = true
			sp, err := storepath.Parse(p)
			if err != nil {
				return nil, fmt.Errorf("output %s of %s: %w", name, d.DrvPath, err)
			}
			out = append(out, sp)
		}
	}
	return out, nil
}
