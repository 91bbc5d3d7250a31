package glue

import (
	"fmt"

	"github.com/tvix-go/tvix/eval"
)

// InstantiatedPaths lists what `nix-instantiate` (without --eval) prints
// for a value: the .drv path of each derivation found, with "!<output>"
// appended when the derivation value selects an output other than "out".
// Like C++ Nix's getDerivations it looks at the value, the elements of a
// list, the attributes of a set (sorted), and recurses into nested sets only
// when they say recurseForDerivations = true; each derivation is listed
// once. It must run inside ev.Run (it forces values).
func InstantiatedPaths(ev *eval.Evaluator, v eval.Value) []string {
	var out []string
	done := map[*eval.Attrs]bool{}
	// derivation reports whether v is a derivation, recording it if so.
	derivation := func(v eval.Value) bool {
		a, ok := ev.Force(v).(*eval.Attrs)
		if !ok {
			return false
		}
		t, ok := a.Get("type")
		if !ok {
			return false
		}
		ts, ok := ev.Force(t).(*eval.String)
		if !ok || ts.S != "derivation" {
			return false
		}
		if done[a] {
			return true
		}
		done[a] = true
		dp, ok := a.Get("drvPath")
		if !ok {
			ev.Throwf("derivation lacks a 'drvPath' attribute")
		}
		line := ev.CoerceToStringMore(dp, false).S
		on, ok := a.Get("outputName")
		if !ok {
			ev.Throwf("derivation '%s' lacks an 'outputName' attribute", line)
		}
		if name := ev.ForceString(on).S; name != "out" {
			line += "!" + name
		}
		out = append(out, line)
		return true
	}
	var walk func(v eval.Value, top bool)
	walk = func(v eval.Value, top bool) {
		if derivation(v) {
			return
		}
		switch x := ev.Force(v).(type) {
		case *eval.Attrs:
			for _, at := range x.All() {
				if derivation(at.Val) {
					continue
				}
				sub, ok := ev.Force(at.Val).(*eval.Attrs)
				if !ok {
					continue
				}
				if r, ok := sub.Get("recurseForDerivations"); ok && ev.ForceBool(r) {
					walk(sub, false)
				}
			}
		case *eval.List:
			// Unlike attribute values, list elements must be derivations,
			// sets or lists.
			for _, it := range x.Items {
				walk(it, true)
			}
		default:
			if top {
				ev.Throwf("expression does not evaluate to a derivation (or a set or list of those)")
			}
		}
	}
	walk(v, true)
	return out
}

// Instantiate evaluates a value's derivations and returns the lines
// nix-instantiate prints for it; errors are evaluation errors.
func Instantiate(ev *eval.Evaluator, v eval.Value) ([]string, error) {
	var lines []string
	_, err := ev.Run(func() eval.Value {
		lines = InstantiatedPaths(ev, v)
		return eval.Null{}
	})
	if err != nil {
		return nil, fmt.Errorf("instantiate: %w", err)
	}
	return lines, nil
}
