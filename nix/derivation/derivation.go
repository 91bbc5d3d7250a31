// Package derivation reads, writes and hashes Nix derivations (.drv files)
// exactly as C++ Nix 2.8 does: the ATerm serialisation, hashDerivationModulo,
// output paths, the .drv store path and the `nix show-derivation` JSON view.
//
// Strings are Go strings holding raw bytes: env values (and everything else)
// may be non-UTF-8 and survive a parse/print round trip unchanged.
package derivation

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/tvix-go/tvix/nix/storepath"
)

// Output is one entry of a derivation's outputs.
type Output struct {
	// Path is the absolute store path, "" while output paths are being
	// computed.
	Path string
	// HashAlgo is "" for input-addressed outputs, else the algorithm with
	// "r:" for recursive (NAR) hashing: "sha256", "r:sha1", ...
	HashAlgo string
	// Hash is the lowercase hex digest of a fixed output, else "".
	Hash string
}

// IsFixed reports whether the output is content-addressed by a given hash.
func (o Output) IsFixed() bool { return o.HashAlgo != "" && o.Hash != "" }

// Derivation is a parsed .drv file.
type Derivation struct {
	Outputs map[string]Output
	// InputDerivations maps a .drv path to the names of its outputs used.
	InputDerivations map[string][]string
	InputSources     []string
	System           string
	Builder          string
	Args             []string
	Env              map[string]string
}

// New returns an empty derivation with its maps allocated.
func New() *Derivation {
	return &Derivation{
		Outputs:          map[string]Output{},
		InputDerivations: map[string][]string{},
		Env:              map[string]string{},
	}
}

// OutputPathName is the name part of an output's store path: the derivation
// name for "out", else "<name>-<output>".
func OutputPathName(drvName, output string) string {
	if output == "out" {
		return drvName
	}
	return drvName + "-" + output
}

// IsFixedOutput reports whether d is a fixed-output derivation: exactly one
// output, "out", carrying a hash.
func (d *Derivation) IsFixedOutput() bool {
	if len(d.Outputs) != 1 {
		return false
	}
	o, ok := d.Outputs["out"]
	return ok && o.IsFixed()
}

// hashAlgos are the algorithms Nix accepts for fixed outputs, with their
// digest sizes in bytes.
var hashAlgos = map[string]int{"md5": 16, "sha1": 20, "sha256": 32, "sha512": 64}

// ParseHashAlgo splits an output's hashAlgo ("r:sha256") into recursive and
// the algorithm, checking the algorithm is known.
func ParseHashAlgo(s string) (recursive bool, algo string, err error) {
	algo, recursive = strings.CutPrefix(s, "r:")
	if _, ok := hashAlgos[algo]; !ok {
		return false, "", fmt.Errorf("unknown hash algorithm %q", s)
	}
	return recursive, algo, nil
}

// Name is the derivation's name: env["name"], or the "name" member of the
// JSON in env["__json"] for structured attrs.
func (d *Derivation) Name() (string, error) {
	if name, ok := d.Env["name"]; ok {
		return name, nil
	}
	if js, ok := d.Env["__json"]; ok {
		var attrs struct {
			Name *string `json:"name"`
		}
		if err := json.Unmarshal([]byte(js), &attrs); err != nil {
			return "", fmt.Errorf("structured attrs (__json): %w", err)
		}
		if attrs.Name != nil {
			return *attrs.Name, nil
		}
	}
	return "", fmt.Errorf("required attribute 'name' missing")
}

// Validate checks the invariants C++ Nix enforces when it creates a
// derivation, with its wording where it has one.
func (d *Derivation) Validate() error {
	name, err := d.Name()
	if err != nil {
		return err
	}
	if strings.HasSuffix(name, ".drv") {
		return fmt.Errorf("derivation names are not allowed to end in '.drv'")
	}
	if err := storepath.ValidateName(name); err != nil {
		return fmt.Errorf("invalid derivation name: %w", err)
	}
	if d.System == "" {
		return fmt.Errorf("required attribute 'system' missing")
	}
	if d.Builder == "" {
		return fmt.Errorf("required attribute 'builder' missing")
	}
	if len(d.Outputs) == 0 {
		return fmt.Errorf("derivation must have at least one output")
	}
	fixed := 0
	for _, on := range sortedKeys(d.Outputs) {
		o := d.Outputs[on]
		if err := ValidateOutputName(on); err != nil {
			return err
		}
		if err := storepath.ValidateName(OutputPathName(name, on)); err != nil {
			return fmt.Errorf("output %q: %w", on, err)
		}
		if o.Path != "" {
			if _, err := storepath.Parse(o.Path); err != nil {
				return fmt.Errorf("output %q: %w", on, err)
			}
		}
		if o.HashAlgo == "" && o.Hash == "" {
			continue
		}
		if o.HashAlgo == "" {
			return fmt.Errorf("output %q has a hash but no hash algorithm", on)
		}
		_, algo, err := ParseHashAlgo(o.HashAlgo)
		if err != nil {
			return fmt.Errorf("output %q: %w", on, err)
		}
		if o.Hash == "" {
			return fmt.Errorf("output %q: content-addressed derivations with floating hashes are not supported", on)
		}
		if want := hashAlgos[algo] * 2; len(o.Hash) != want || !isLowerHex(o.Hash) {
			return fmt.Errorf("output %q: hash '%s' has wrong length for hash type '%s' (want %d lowercase hex digits)", on, o.Hash, algo, want)
		}
		fixed++
	}
	if fixed > 0 && (len(d.Outputs) != 1 || d.Outputs["out"].Hash == "") {
		return fmt.Errorf("multiple outputs are not supported in fixed-output derivations")
	}
	for _, p := range sortedKeys(d.InputDerivations) {
		if !strings.HasSuffix(p, ".drv") {
			return fmt.Errorf("input derivation %q does not end in .drv", p)
		}
		if _, err := storepath.Parse(p); err != nil {
			return fmt.Errorf("input derivation: %w", err)
		}
		if len(d.InputDerivations[p]) == 0 {
			return fmt.Errorf("input derivation %q has no outputs", p)
		}
		for _, o := range d.InputDerivations[p] {
			if err := ValidateOutputName(o); err != nil {
				return fmt.Errorf("input derivation %q: %w", p, err)
			}
		}
	}
	for _, p := range d.InputSources {
		if _, err := storepath.Parse(p); err != nil {
			return fmt.Errorf("input source: %w", err)
		}
	}
	return nil
}

// ValidateOutputName refuses names that cannot appear in a store path and
// "drv", which Nix reserves.
func ValidateOutputName(name string) error {
	if name == "drv" {
		return fmt.Errorf("invalid derivation output name 'drv'")
	}
	if err := storepath.ValidateName(name); err != nil {
		return fmt.Errorf("invalid derivation output name '%s': %w", name, err)
	}
	return nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Clone returns a deep copy, so callers can fill output paths without
// touching the original.
func (d *Derivation) Clone() *Derivation {
	c := &Derivation{
		Outputs:          make(map[string]Output, len(d.Outputs)),
		InputDerivations: make(map[string][]string, len(d.InputDerivations)),
		InputSources:     append([]string(nil), d.InputSources...),
		System:           d.System,
		Builder:          d.Builder,
		Args:             append([]string(nil), d.Args...),
		Env:              make(map[string]string, len(d.Env)),
	}
	for k, v := range d.Outputs {
		c.Outputs[k] = v
	}
	for k, v := range d.InputDerivations {
		c.InputDerivations[k] = append([]string(nil), v...)
	}
	for k, v := range d.Env {
		c.Env[k] = v
	}
	return c
}
