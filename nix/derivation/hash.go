package derivation

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"

	"github.com/tvix-go/tvix/nix/storepath"
)

// ModuloLookup returns the hashDerivationModulo of an input derivation.
type ModuloLookup func(drvPath string) ([32]byte, error)

// HashDerivationModulo is Nix's hashDerivationModulo: a fixed-output
// derivation hashes as sha256("fixed:out:[r:]<algo>:<hex>:<out path>"), so
// changing how it is fetched changes nothing downstream; any other
// derivation hashes as its ATerm with every input .drv path replaced by the
// lowercase hex of that input's own modulo hash (looked up with lookup,
// which the caller may memoise).
func (d *Derivation) HashDerivationModulo(lookup ModuloLookup) ([32]byte, error) {
	if d.IsFixedOutput() {
		return d.fixedModulo(), nil
	}
	in, err := d.moduloInputs(lookup)
	if err != nil {
		return [32]byte{}, err
	}
	h := d.hashATerm(*in)
	putInputs(in)
	return h, nil
}

func (d *Derivation) fixedModulo() [32]byte {
	o := d.Outputs["out"]
	return sha256.Sum256([]byte("fixed:out:" + o.HashAlgo + ":" + o.Hash + ":" + o.Path))
}

// moduloInputs are the input derivations as hashDerivationModulo writes
// them: each .drv path replaced by its input's modulo hash, in the order
// of those. Hand them back with putInputs.
func (d *Derivation) moduloInputs(lookup ModuloLookup) (*[]atermInput, error) {
	p := d.sortedInputs()
	inputs := *p
	for i := range inputs {
		if lookup == nil {
			err := fmt.Errorf("hash derivation modulo: no lookup for input derivation %s", inputs[i].path)
			putInputs(p)
			return nil, err
		}
		h, err := lookup(inputs[i].path)
		if err != nil {
			err = fmt.Errorf("hash derivation modulo of input %s: %w", inputs[i].path, err)
			putInputs(p)
			return nil, err
		}
		inputs[i].path, inputs[i].modulo = "", h
	}
	// hex sorts as its bytes do
	slices.SortStableFunc(inputs, func(a, b atermInput) int { return bytes.Compare(a.modulo[:], b.modulo[:]) })
	// Two inputs with equal modulo hashes collapse into one entry, the
	// later .drv path's, as in C++ Nix (insert_or_assign in path order);
	// they can only differ in being identical fixed-output derivations,
	// whose outputs are both "out".
	n := 0
	for i := range inputs {
		if n > 0 && inputs[n-1].modulo == inputs[i].modulo {
			inputs[n-1] = inputs[i]
			continue
		}
		inputs[n] = inputs[i]
		n++
	}
	clear(inputs[n:])
	*p = inputs[:n]
	return p, nil
}

// CalculateOutputPaths fills every output's path and the env entry of the
// same name, as derivationStrict does for a derivation called name: a
// fixed-output derivation's path follows from its hash; the others' from the
// modulo hash of the derivation with all output paths (and their env
// entries) blank.
func (d *Derivation) CalculateOutputPaths(name string, lookup ModuloLookup) error {
	_, err := d.calculateOutputPaths(name, lookup, false)
	return err
}

// CalculateOutputPathsModulo is CalculateOutputPaths, then
// HashDerivationModulo of the result: derivationStrict needs both, and
// the inputs' modulo hashes, looked up and sorted, serve the two.
func (d *Derivation) CalculateOutputPathsModulo(name string, lookup ModuloLookup) ([32]byte, error) {
	return d.calculateOutputPaths(name, lookup, true)
}

func (d *Derivation) calculateOutputPaths(name string, lookup ModuloLookup, modulo bool) ([32]byte, error) {
	if d.Env == nil {
		d.Env = map[string]string{}
	}
	if d.IsFixedOutput() {
		o := d.Outputs["out"]
		recursive, algo, err := ParseHashAlgo(o.HashAlgo)
		if err != nil {
			return [32]byte{}, fmt.Errorf("output path of %s: %w", name, err)
		}
		digest, err := hex.DecodeString(o.Hash)
		if err != nil || len(digest) != hashAlgos[algo] {
			return [32]byte{}, fmt.Errorf("output path of %s: hash %q is not %d bytes of hex", name, o.Hash, hashAlgos[algo])
		}
		sp, err := storepath.MakeFixedOutput(name, recursive, algo, digest, nil)
		if err != nil {
			return [32]byte{}, fmt.Errorf("output path of %s: %w", name, err)
		}
		o.Path = sp.String()
		d.Outputs["out"] = o
		d.Env["out"] = o.Path
		if !modulo {
			return [32]byte{}, nil
		}
		return d.fixedModulo(), nil
	}
	for on, o := range d.Outputs {
		if o.HashAlgo != "" || o.Hash != "" {
			return [32]byte{}, fmt.Errorf("output path of %s: output %q is content-addressed but the derivation is not fixed-output", name, on)
		}
		o.Path = ""
		d.Outputs[on] = o
		d.Env[on] = ""
	}
	in, err := d.moduloInputs(lookup)
	if err != nil {
		return [32]byte{}, fmt.Errorf("output paths of %s: %w", name, err)
	}
	defer putInputs(in)
	h := d.hashATerm(*in)
	var kb [4]string // few outputs: the sorted names stay on the stack
	names := kb[:0]
	for on := range d.Outputs {
		names = append(names, on)
	}
	// sorted, so the error names the same output every time
	slices.Sort(names)
	for _, on := range names {
		p, err := storepath.OutputPath(on, h[:], name)
		if err != nil {
			return [32]byte{}, fmt.Errorf("output %q of %s: %w", on, name, err)
		}
		d.Outputs[on] = Output{Path: p}
		d.Env[on] = p
	}
	if !modulo {
		return [32]byte{}, nil
	}
	return d.hashATerm(*in), nil
}

// References are the store paths a .drv file refers to: the union of its
// input sources and input derivations (a .drv can be both, when a string
// with a drvPath's context was used).
func (d *Derivation) References() ([]storepath.StorePath, error) {
	paths := d.ReferencePaths()
	refs := make([]storepath.StorePath, 0, len(paths))
	for _, p := range paths {
		sp, err := storepath.Parse(p)
		if err != nil {
			return nil, fmt.Errorf("reference: %w", err)
		}
		refs = append(refs, sp)
	}
	return refs, nil
}

// ReferencePaths are References as absolute paths, sorted, unchecked
// (storepath.MakeTextPaths checks them).
func (d *Derivation) ReferencePaths() []string {
	return d.AppendReferencePaths(make([]string, 0, len(d.InputSources)+len(d.InputDerivations)))
}

// AppendReferencePaths is ReferencePaths appended to dst (a buffer the
// caller recycles).
func (d *Derivation) AppendReferencePaths(dst []string) []string {
	n := len(dst)
	paths := append(dst, d.InputSources...)
	for p := range d.InputDerivations {
		paths = append(paths, p)
	}
	slices.Sort(paths[n:])
	return append(paths[:n], slices.Compact(paths[n:])...)
}

// DrvPath is the store path the .drv file of a derivation called name is
// written to: a text path over its ATerm with its references.
func (d *Derivation) DrvPath(name string) (storepath.StorePath, error) {
	refs, err := d.References()
	if err != nil {
		return storepath.StorePath{}, fmt.Errorf("drv path of %s: %w", name, err)
	}
	h := d.ATermSHA256()
	sp, err := storepath.MakeText(name+".drv", h[:], refs)
	if err != nil {
		return storepath.StorePath{}, fmt.Errorf("drv path of %s: %w", name, err)
	}
	return sp, nil
}

// NewModuloCache returns a ModuloLookup that reads input derivations with
// read (e.g. from /nix/store or a castore), parses them and computes their
// modulo hashes recursively, remembering every result. Safe for concurrent
// use.
func NewModuloCache(read func(drvPath string) ([]byte, error)) ModuloLookup {
	c := &moduloCache{read: read, memo: map[string][32]byte{}}
	return c.lookup
}

type moduloCache struct {
	read func(string) ([]byte, error)
	mu   sync.Mutex
	memo map[string][32]byte
}

func (c *moduloCache) lookup(drvPath string) ([32]byte, error) {
	c.mu.Lock()
	h, ok := c.memo[drvPath]
	c.mu.Unlock()
	if ok {
		return h, nil
	}
	data, err := c.read(drvPath)
	if err != nil {
		return h, fmt.Errorf("read %s: %w", drvPath, err)
	}
	d, err := Parse(data)
	if err != nil {
		return h, fmt.Errorf("%s: %w", drvPath, err)
	}
	h, err = d.HashDerivationModulo(c.lookup)
	if err != nil {
		return h, err
	}
	c.mu.Lock()
	c.memo[drvPath] = h
	c.mu.Unlock()
	return h, nil
}
