package nixhash

import (
	"fmt"
	"strings"

	"github.com/tvix-go/tvix/nix/storepath"
)

// Method says what a content address hashes.
type Method uint8

const (
	// Flat hashes the file's bytes ("fixed:<algo>:...").
	Flat Method = iota + 1
	// Recursive hashes the NAR serialisation ("fixed:r:<algo>:...").
	Recursive
	// Text is builtins.toFile and .drv files ("text:sha256:..."), which
	// may reference other paths but not themselves.
	Text
)

func (m Method) String() string {
	switch m {
	case Flat:
		return "flat"
	case Recursive:
		return "recursive"
	case Text:
		return "text"
	}
	return fmt.Sprintf("Method(%d)", uint8(m))
}

// CA is a content address as narinfo's CA field and the store database
// hold it.
type CA struct {
	Method Method
	Hash   Hash
}

// ParseCA accepts "fixed:[r:]<algo>:<digest>" and "text:sha256:<digest>",
// the digest in any non-SRI encoding (Nix prints nixbase32).
func ParseCA(s string) (CA, error) {
	var m Method
	rest, ok := strings.CutPrefix(s, "text:")
	if ok {
		m = Text
	} else if rest, ok = strings.CutPrefix(s, "fixed:"); ok {
		m = Flat
		if r, ok := strings.CutPrefix(rest, "r:"); ok {
			m, rest = Recursive, r
		}
	} else {
		return CA{}, fmt.Errorf("parse content address %q: want fixed:[r:]<algo>:<hash> or text:sha256:<hash>", s)
	}
	a, enc, ok := strings.Cut(rest, ":")
	if !ok {
		return CA{}, fmt.Errorf("parse content address %q: missing <algo>:", s)
	}
	algo, err := ParseAlgo(a)
	if err != nil {
		return CA{}, fmt.Errorf("parse content address %q: %w", s, err)
	}
	if m == Text && algo != SHA256 {
		return CA{}, fmt.Errorf("parse content address %q: text content addresses use sha256, not %v", s, algo)
	}
	h, err := decode(s, algo, enc, false)
	if err != nil {
		return CA{}, fmt.Errorf("parse content address: %w", err)
	}
	return CA{Method: m, Hash: h}, nil
}

// String prints the CA as Nix does, with a nixbase32 digest.
func (c CA) String() string {
	switch c.Method {
	case Text:
		return "text:" + c.Hash.String()
	case Recursive:
		return "fixed:r:" + c.Hash.String()
	default:
		return "fixed:" + c.Hash.String()
	}
}

// StorePath computes the store path content with this address gets:
// text paths may have references, recursive sha256 paths references and
// self, other fixed outputs none.
func (c CA) StorePath(name string, refs []storepath.StorePath, self bool) (storepath.StorePath, error) {
	switch c.Method {
	case Text:
		if self {
			return storepath.StorePath{}, fmt.Errorf("text path %q cannot reference itself", name)
		}
		return storepath.MakeText(name, c.Hash.Digest, refs)
	case Recursive:
		if c.Hash.Algo == SHA256 {
			return storepath.MakeSource(name, c.Hash.Digest, refs, self)
		}
	}
	if self {
		return storepath.StorePath{}, fmt.Errorf("fixed-output path %q cannot reference itself", name)
	}
	return storepath.MakeFixedOutput(name, c.Method == Recursive, c.Hash.Algo.String(), c.Hash.Digest, refs)
}
