package glue

import (
	"fmt"
	"testing"

	"github.com/tvix-go/tvix/nix/derivation"
)

// TestRecycleDrv: a recycled derivation is handed back empty, so the
// next derivation computed with it cannot inherit an output, an input or
// an env entry; one whose maps grew large is left alone (not cleared,
// not kept).
func TestRecycleDrv(t *testing.T) {
	fill := func(n int) *derivation.Derivation {
		d := derivation.New()
		d.System, d.Builder, d.Args = "x86_64-linux", "/bin/sh", []string{"-c", "true"}
		d.InputSources = []string{"/nix/store/00000000000000000000000000000000-src"}
		d.Outputs["out"] = derivation.Output{Path: "/nix/store/00000000000000000000000000000000-x"}
		for i := range n {
			d.InputDerivations[fmt.Sprintf("/nix/store/%032d-d.drv", i)] = []string{"out"}
			d.Env[fmt.Sprint("k", i)] = "v"
		}
		return d
	}
	for _, tc := range []struct {
		name    string
		entries int
		cleared bool
	}{
		{"small", 3, true},
		{"at the limit", recycleScratchMax, true},
		{"past the limit", recycleScratchMax + 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := fill(tc.entries)
			recycleDrv(d)
			empty := len(d.Outputs) == 0 && len(d.InputDerivations) == 0 && len(d.Env) == 0 &&
				d.InputSources == nil && d.Args == nil && d.System == "" && d.Builder == ""
			if empty != tc.cleared {
				t.Fatalf("after recycling %d entries: emptied %v, want %v (%+v)", tc.entries, empty, tc.cleared, d)
			}
			if tc.cleared && (d.Outputs == nil || d.InputDerivations == nil || d.Env == nil) {
				t.Fatalf("recycled derivation lost its maps: %+v", d)
			}
		})
	}
}
