// Package narinfo parses and prints the .narinfo files of Nix binary
// caches, computes their signature fingerprint and signs and verifies it
// with ed25519 keys in Nix's "name:base64" format.
//
// A narinfo is "Key: value" lines. Required: StorePath, URL, NarHash,
// NarSize, References (may be empty). Optional: Compression (absent means
// bzip2), FileHash, FileSize, Deriver, System, Sig (repeatable), CA.
// Unknown keys are ignored, as Nix does; a repeated key (other than Sig) is
// an error. String prints the fields in Nix's order, so a narinfo Nix wrote
// round-trips byte for byte.
package narinfo

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/tvix-go/tvix/nix/nixhash"
	"github.com/tvix-go/tvix/nix/storepath"
)

// NarInfo is one parsed .narinfo.
type NarInfo struct {
	StorePath storepath.StorePath
	URL       string
	// Compression as written; "" when the field is absent, which Nix reads
	// as bzip2 (see EffectiveCompression).
	Compression string
	FileHash    *nixhash.Hash // nil when absent
	FileSize    uint64        // 0 when absent
	NarHash     nixhash.Hash  // sha256
	NarSize     uint64
	References  []storepath.StorePath
	Deriver     *storepath.StorePath // nil when absent
	System      string
	Signatures  []Signature
	CA          *nixhash.CA // nil when absent
}

// Signature is one "Sig:" value, "<key name>:<base64 of 64 bytes>".
type Signature struct {
	Name string
	Data []byte
}

// ParseSignature parses "name:base64".
func ParseSignature(s string) (Signature, error) {
	name, b64, ok := strings.Cut(s, ":")
	if !ok || name == "" {
		return Signature{}, fmt.Errorf("invalid signature %q: want <key name>:<base64>", s)
	}
	if nixhash.HasSpace(name) {
		return Signature{}, fmt.Errorf("invalid signature %q: the key name contains white space", s)
	}
	data, err := nixhash.DecodeBase64(b64)
	if err != nil {
		return Signature{}, fmt.Errorf("invalid signature %q: %w", s, err)
	}
	if len(data) != SignatureSize {
		return Signature{}, fmt.Errorf("invalid signature %q: %d bytes, want %d", s, len(data), SignatureSize)
	}
	return Signature{Name: name, Data: data}, nil
}

func (s Signature) String() string { return s.Name + ":" + base64.StdEncoding.EncodeToString(s.Data) }

// maxLine bounds a line, so a hostile cache cannot make us buffer without
// limit; real narinfos with thousands of references stay far below.
const maxLine = 1 << 20

// Parse reads one narinfo.
func Parse(r io.Reader) (*NarInfo, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxLine)
	ni := &NarInfo{}
	seen := map[string]bool{}
	lineNo := 0
	fail := func(format string, args ...any) (*NarInfo, error) {
		return nil, fmt.Errorf("parse narinfo: line %d: "+format, append([]any{lineNo}, args...)...)
	}
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		if line == "" {
			continue
		}
		key, value, ok := strings.Cut(line, ":")
		if !ok {
			return fail("%q is not a Key: value line", line)
		}
		// Nix writes exactly one space; "References:" with nothing after
		// it is tolerated.
		value = strings.TrimPrefix(value, " ")
		if key != "Sig" {
			if seen[key] {
				return fail("duplicate %s", key)
			}
			seen[key] = true
		}
		switch key {
		case "StorePath":
			p, err := storepath.Parse(value)
			if err != nil {
				return fail("StorePath: %v", err)
			}
			ni.StorePath = p
		case "URL":
			if value == "" {
				return fail("URL is empty")
			}
			ni.URL = value
		case "Compression":
			ni.Compression = value
		case "FileHash":
			h, err := nixhash.Parse(value)
			if err != nil {
				return fail("FileHash: %v", err)
			}
			ni.FileHash = &h
		case "FileSize":
			n, err := strconv.ParseUint(value, 10, 64)
			if err != nil {
				return fail("FileSize %q: not a number", value)
			}
			ni.FileSize = n
		case "NarHash":
			h, err := nixhash.ParseAs(nixhash.SHA256, value)
			if err != nil {
				return fail("NarHash: %v", err)
			}
			ni.NarHash = h
		case "NarSize":
			n, err := strconv.ParseUint(value, 10, 64)
			if err != nil {
				return fail("NarSize %q: not a number", value)
			}
			ni.NarSize = n
		case "References":
			for _, f := range strings.Fields(value) {
				p, err := storepath.FromBasename(f)
				if err != nil {
					return fail("References: %v", err)
				}
				ni.References = append(ni.References, p)
			}
		case "Deriver":
			// Nix writes "unknown-deriver" when there is none.
			if value == "unknown-deriver" {
				continue
			}
			p, err := storepath.FromBasename(value)
			if err != nil {
				return fail("Deriver: %v", err)
			}
			if !strings.HasSuffix(p.Name, ".drv") {
				return fail("Deriver %q does not end in .drv", value)
			}
			ni.Deriver = &p
		case "System":
			ni.System = value
		case "Sig":
			s, err := ParseSignature(value)
			if err != nil {
				return fail("Sig: %v", err)
			}
			ni.Signatures = append(ni.Signatures, s)
		case "CA":
			ca, err := nixhash.ParseCA(value)
			if err != nil {
				return fail("CA: %v", err)
			}
			ni.CA = &ca
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("parse narinfo: after line %d: %w", lineNo, err)
	}
	for _, k := range []string{"StorePath", "URL", "NarHash", "NarSize"} {
		if !seen[k] {
			return nil, fmt.Errorf("parse narinfo: missing %s", k)
		}
	}
	if ni.NarSize == 0 {
		return nil, fmt.Errorf("parse narinfo: NarSize is 0")
	}
	return ni, nil
}

// EffectiveCompression is the compression Nix assumes: bzip2 when the
// field is absent.
func (ni *NarInfo) EffectiveCompression() string {
	if ni.Compression == "" {
		return "bzip2"
	}
	return ni.Compression
}

// String prints the narinfo as Nix does.
func (ni *NarInfo) String() string {
	var b strings.Builder
	line := func(k, v string) {
		b.WriteString(k)
		b.WriteString(": ")
		b.WriteString(v)
		b.WriteByte('\n')
	}
	line("StorePath", ni.StorePath.String())
	line("URL", ni.URL)
	if ni.Compression != "" {
		line("Compression", ni.Compression)
	}
	if ni.FileHash != nil {
		line("FileHash", ni.FileHash.String())
	}
	if ni.FileSize != 0 {
		line("FileSize", strconv.FormatUint(ni.FileSize, 10))
	}
	line("NarHash", ni.NarHash.String())
	line("NarSize", strconv.FormatUint(ni.NarSize, 10))
	refs := make([]string, len(ni.References))
	for i, r := range ni.References {
		refs[i] = r.Basename()
	}
	line("References", strings.Join(refs, " "))
	if ni.Deriver != nil {
		line("Deriver", ni.Deriver.Basename())
	}
	if ni.System != "" {
		line("System", ni.System)
	}
	for _, s := range ni.Signatures {
		line("Sig", s.String())
	}
	if ni.CA != nil {
		line("CA", ni.CA.String())
	}
	return b.String()
}

// Fingerprint is what Nix signs:
// "1;<store path>;<sha256:nb32 NAR hash>;<NAR size>;<refs, comma-separated>".
func (ni *NarInfo) Fingerprint() string {
	return Fingerprint(ni.StorePath, ni.NarHash, ni.NarSize, ni.References)
}

// Fingerprint computes the signed string for a path from its parts (the
// same for a PathInfo as for a narinfo). References are sorted, as Nix's
// StorePathSet is, whatever order they come in.
func Fingerprint(p storepath.StorePath, narHash nixhash.Hash, narSize uint64, refs []storepath.StorePath) string {
	refs = slices.Clone(refs)
	slices.SortFunc(refs, func(a, b storepath.StorePath) int { return strings.Compare(a.Basename(), b.Basename()) })
	var b strings.Builder
	b.WriteString("1;")
	b.WriteString(p.String())
	b.WriteString(";")
	b.WriteString(narHash.String())
	b.WriteString(";")
	b.WriteString(strconv.FormatUint(narSize, 10))
	b.WriteString(";")
	for i, r := range refs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(r.String())
	}
	return b.String()
}
