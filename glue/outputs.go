package glue

import (
	"fmt"
	"sort"
	"strings"

	"github.com/tvix-go/tvix/eval"
	"github.com/tvix-go/tvix/store/storepath"
)

// OutputPaths evaluates v the way nix-instantiate would and returns the
// output paths of the derivations it names (the selected output, or every
// output when a whole derivation is named): what a command seeded by an
// expression substitutes. Plain store path strings count as themselves.
func (g *Glue) OutputPaths(ev *eval.Evaluator, v eval.Value) ([]storepath.StorePath, error) {
	lines, err := Instantiate(ev, v)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []storepath.StorePath
	add := func(p string) error {
		if seen[p] {
			return nil
		}
		seen[p] = true
		sp, err := storepath.Parse(p)
		if err != nil {
			return err
		}
		out = append(out, sp)
		return nil
	}
	for _, l := range lines {
		drvPath, output, _ := strings.Cut(l, "!")
		d, ok := g.Derivation(drvPath)
		if !ok {
			return nil, fmt.Errorf("derivation %s was not created by this evaluation", drvPath)
		}
		names := make([]string, 0, len(d.Outputs))
		for name := range d.Outputs {
			if output == "" || name == output {
				names = append(names, name)
			}
		}
		sort.Strings(names)
		for _, name := range names {
			if err := add(d.Outputs[name].Path); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}
