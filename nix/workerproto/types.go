package workerproto

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/tvix-go/tvix/nix/derivation"
)

// PathInfo is Nix's ValidPathInfo as the protocol carries it (format 16
// and later: with ultimate, signatures and content address).
type PathInfo struct {
	Path    string
	Deriver string // "" when unknown
	// NarHash is the sha256 in lowercase hex (as Nix writes it; it reads
	// any of Nix's spellings).
	NarHash          string
	References       []string
	RegistrationTime uint64
	NarSize          uint64
	Ultimate         bool
	Sigs             []string
	CA               string // "" when not content-addressed
}

// ReadPathInfo reads a ValidPathInfo; withPath says whether the path
// leads it.
func (r *Reader) ReadPathInfo(withPath bool) PathInfo {
	var pi PathInfo
	if withPath {
		pi.Path = r.Path("path")
	}
	pi.Deriver = r.Path("deriver")
	pi.NarHash = string(r.Bytes("NAR hash", 256))
	pi.References = r.Paths("references")
	pi.RegistrationTime = r.Uint64("registration time")
	pi.NarSize = r.Uint64("NAR size")
	pi.Ultimate = r.Bool("ultimate")
	pi.Sigs = r.Strings("signatures", 4096)
	pi.CA = string(r.Bytes("content address", 1024))
	return pi
}

// WritePathInfo writes a ValidPathInfo; withPath says whether the path
// leads it. References and signatures go sorted, as Nix's sets.
func (w *Writer) WritePathInfo(pi PathInfo, withPath bool) {
	if withPath {
		w.String(pi.Path)
	}
	w.String(pi.Deriver)
	w.String(pi.NarHash)
	w.StringSet(pi.References)
	w.Uint64(pi.RegistrationTime)
	w.Uint64(pi.NarSize)
	w.Bool(pi.Ultimate)
	w.StringSet(pi.Sigs)
	w.String(pi.CA)
}

// DerivedPath is what BuildPaths and QueryMissing name: a store path
// (Outputs nil, not a derivation output), or a derivation and the outputs
// wanted (All for "*").
type DerivedPath struct {
	Path    string
	Built   bool
	All     bool
	Outputs []string
}

// ParseDerivedPath reads "/nix/store/…" or "/nix/store/….drv!out,dev" or
// "….drv!*".
func ParseDerivedPath(s string) (DerivedPath, error) {
	p, outs, built := strings.Cut(s, "!")
	if !built {
		return DerivedPath{Path: s}, nil
	}
	if !strings.HasSuffix(p, ".drv") {
		return DerivedPath{}, fmt.Errorf("derived path %q: outputs of %s, which is not a derivation", s, p)
	}
	if outs == "*" {
		return DerivedPath{Path: p, Built: true, All: true}, nil
	}
	var names []string
	for _, o := range strings.Split(outs, ",") {
		if o == "" {
			continue
		}
		if err := derivation.ValidateOutputName(o); err != nil {
			return DerivedPath{}, fmt.Errorf("derived path %q: %w", s, err)
		}
		names = append(names, o)
	}
	if len(names) == 0 {
		return DerivedPath{}, fmt.Errorf("derived path %q names no output", s)
	}
	sort.Strings(names)
	return DerivedPath{Path: p, Built: true, Outputs: names}, nil
}

func (d DerivedPath) String() string {
	switch {
	case !d.Built:
		return d.Path
	case d.All || len(d.Outputs) == 0:
		return d.Path + "!*"
	}
	return d.Path + "!" + strings.Join(d.Outputs, ",")
}

// ReadBasicDerivation reads a derivation as BuildDerivation sends it: no
// input derivations (a remote builder's inputs arrive as sources, the
// whole closure), each output as path, hash algorithm and hash.
func (r *Reader) ReadBasicDerivation() (*derivation.Derivation, error) {
	d := derivation.New()
	n := r.count("outputs")
	for i := 0; i < n && r.err == nil; i++ {
		name := r.String("output name")
		path := r.Path("output path")
		algo := r.String("output hash algorithm")
		hash := r.String("output hash")
		d.Outputs[name] = derivation.Output{Path: path, HashAlgo: algo, Hash: hash}
	}
	d.InputSources = r.Paths("input sources")
	d.System = r.String("system")
	d.Builder = r.String("builder")
	d.Args = r.Strings("arguments", MaxStringLen)
	d.Env = r.StringMap("environment")
	if r.err != nil {
		return nil, r.err
	}
	sort.Strings(d.InputSources)
	return d, nil
}

// WriteBasicDerivation writes d as BuildDerivation sends it (without its
// input derivations).
func (w *Writer) WriteBasicDerivation(d *derivation.Derivation) {
	names := make([]string, 0, len(d.Outputs))
	for n := range d.Outputs {
		names = append(names, n)
	}
	sort.Strings(names)
	w.Uint64(uint64(len(names)))
	for _, n := range names {
		o := d.Outputs[n]
		w.String(n)
		w.String(o.Path)
		w.String(o.HashAlgo)
		w.String(o.Hash)
	}
	w.StringSet(d.InputSources)
	w.String(d.System)
	w.String(d.Builder)
	w.Strings(d.Args)
	keys := make([]string, 0, len(d.Env))
	for k := range d.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	w.Uint64(uint64(len(keys)))
	for _, k := range keys {
		w.String(k)
		w.String(d.Env[k])
	}
}

// Realisation is one built output as BuildResult carries it: the output's
// id ("sha256:<hex of the derivation's masked modulo hash>!<output>") and
// its store path.
type Realisation struct {
	ID      string
	OutPath string // absolute; the wire carries the basename
}

// BuildResult is Nix's BuildResult.
type BuildResult struct {
	Path                DerivedPath
	Status              BuildStatus
	ErrorMsg            string
	TimesBuilt          uint64
	IsNonDeterministic  bool
	StartTime, StopTime uint64
	BuiltOutputs        []Realisation
}

// WriteBuildOutputs writes the map DrvOutput → Realisation (JSON, as
// Nix's Realisation::toJSON).
func (w *Writer) WriteBuildOutputs(outs []Realisation) {
	sorted := append([]Realisation(nil), outs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].ID < sorted[j].ID })
	w.Uint64(uint64(len(sorted)))
	for _, o := range sorted {
		w.String(o.ID)
		base := o.OutPath[strings.LastIndexByte(o.OutPath, '/')+1:]
		j, _ := json.Marshal(struct {
			ID         string            `json:"id"`
			OutPath    string            `json:"outPath"`
			Signatures []string          `json:"signatures"`
			Dependent  map[string]string `json:"dependentRealisations"`
		}{o.ID, base, []string{}, map[string]string{}})
		w.String(string(j))
	}
}

// WriteBuildResult writes a BuildResult as BuildPathsWithResults does.
func (w *Writer) WriteBuildResult(res BuildResult) {
	w.String(res.Path.String())
	w.Uint64(uint64(res.Status))
	w.String(res.ErrorMsg)
	w.Uint64(res.TimesBuilt)
	w.Bool(res.IsNonDeterministic)
	w.Uint64(res.StartTime)
	w.Uint64(res.StopTime)
	w.WriteBuildOutputs(res.BuiltOutputs)
}
