package derivation

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/tvix-go/tvix/nix/storepath"
)

// ATerm renders d as C++ Nix writes a .drv file: outputs sorted by name,
// input derivations by path (their outputs sorted), sources and env sorted,
// no whitespace.
//
// Like Nix 2.8, only the builder, args and env keys and values are escaped;
// output names, paths, hash fields, input paths and the system are written
// verbatim, so the bytes (and therefore every hash) match C++ Nix even for
// odd values.
func (d *Derivation) ATerm() []byte {
	var b bytes.Buffer
	b.Grow(d.sizeHint())
	d.writeATerm(&b, d.InputDerivations)
	return b.Bytes()
}

// ATermSHA256 is the sha256 of ATerm(), computed without keeping the
// bytes (read-only mode needs only the .drv's path).
func (d *Derivation) ATermSHA256() [32]byte { return d.hashATerm(d.InputDerivations) }

// atermBufs recycles the buffers ATerms are hashed from.
var atermBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// hashATerm is the sha256 of the ATerm with the given input derivations,
// without keeping the ATerm.
func (d *Derivation) hashATerm(inputs map[string][]string) [32]byte {
	b := atermBufs.Get().(*bytes.Buffer)
	b.Reset()
	d.writeATerm(b, inputs)
	h := sha256.Sum256(b.Bytes())
	if b.Cap() <= 1<<20 {
		atermBufs.Put(b)
	}
	return h
}

func (d *Derivation) writeATerm(b *bytes.Buffer, inputs map[string][]string) {
	b.WriteString("Derive([")
	for i, name := range sortedKeys(d.Outputs) {
		o := d.Outputs[name]
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		writeRaw(b, name)
		b.WriteByte(',')
		writeRaw(b, o.Path)
		b.WriteByte(',')
		writeRaw(b, o.HashAlgo)
		b.WriteByte(',')
		writeRaw(b, o.Hash)
		b.WriteByte(')')
	}
	b.WriteString("],[")
	for i, p := range sortedKeys(inputs) {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		writeRaw(b, p)
		b.WriteString(",[")
		writeRawList(b, sortedSet(inputs[p]))
		b.WriteString("])")
	}
	b.WriteString("],[")
	writeRawList(b, sortedSet(d.InputSources))
	b.WriteString("],")
	writeRaw(b, d.System)
	b.WriteByte(',')
	writeEscaped(b, d.Builder)
	b.WriteString(",[")
	for i, a := range d.Args {
		if i > 0 {
			b.WriteByte(',')
		}
		writeEscaped(b, a)
	}
	b.WriteString("],[")
	// The env's sorted keys go through a recycled slice: a derivation's
	// ATerm is written three times (two hashes and the file).
	kp := keyBufs.Get().(*[]string)
	keys := (*kp)[:0]
	for k := range d.Env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		writeEscaped(b, k)
		b.WriteByte(',')
		writeEscaped(b, d.Env[k])
		b.WriteByte(')')
	}
	b.WriteString("])")
	clear(keys)
	*kp = keys[:0]
	keyBufs.Put(kp)
}

var keyBufs = sync.Pool{New: func() any { return new([]string) }}

func (d *Derivation) sizeHint() int {
	n := 64 + len(d.System) + len(d.Builder)
	for k, o := range d.Outputs {
		n += len(k) + len(o.Path) + len(o.HashAlgo) + len(o.Hash) + 12
	}
	for k, v := range d.InputDerivations {
		n += len(k) + 8
		for _, o := range v {
			n += len(o) + 3
		}
	}
	for _, s := range d.InputSources {
		n += len(s) + 3
	}
	for _, a := range d.Args {
		n += len(a) + 3
	}
	for k, v := range d.Env {
		n += len(k) + len(v) + 8
	}
	return n
}

// sortedSet returns the strings sorted and without duplicates, as the C++
// std::set they come from would hold them.
func sortedSet(in []string) []string {
	s := slices.Clone(in)
	sort.Strings(s)
	return slices.Compact(s)
}

func writeRaw(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	b.WriteString(s)
	b.WriteByte('"')
}

func writeRawList(b *bytes.Buffer, l []string) {
	for i, s := range l {
		if i > 0 {
			b.WriteByte(',')
		}
		writeRaw(b, s)
	}
}

func writeEscaped(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	start := 0
	for i := 0; i < len(s); i++ {
		var esc string
		switch s[i] {
		case '"':
			esc = `\"`
		case '\\':
			esc = `\\`
		case '\n':
			esc = `\n`
		case '\r':
			esc = `\r`
		case '\t':
			esc = `\t`
		default:
			continue
		}
		b.WriteString(s[start:i])
		b.WriteString(esc)
		start = i + 1
	}
	b.WriteString(s[start:])
	b.WriteByte('"')
}

// ParseError says where in the ATerm parsing stopped and why.
type ParseError struct {
	Offset int
	Msg    string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("parse derivation at byte %d: %s", e.Offset, e.Msg)
}

type parser struct {
	data []byte
	pos  int
}

func (p *parser) fail(format string, args ...any) error {
	return &ParseError{Offset: p.pos, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) expect(tok string) error {
	if !bytes.HasPrefix(p.data[p.pos:], []byte(tok)) {
		got := p.data[p.pos:min(len(p.data), p.pos+len(tok))]
		return p.fail("expected %q, got %q", tok, got)
	}
	p.pos += len(tok)
	return nil
}

// peek reports whether the next byte is c, without consuming it.
func (p *parser) peek(c byte) bool { return p.pos < len(p.data) && p.data[p.pos] == c }

// str reads a quoted string, undoing the escapes Nix writes; like Nix, a
// backslash before any other byte stands for that byte.
func (p *parser) str() (string, error) {
	if err := p.expect(`"`); err != nil {
		return "", err
	}
	start := p.pos
	// Fast path: no escapes.
	for i := p.pos; i < len(p.data); i++ {
		switch p.data[i] {
		case '"':
			p.pos = i + 1
			return string(p.data[start:i]), nil
		case '\\':
			goto slow
		}
	}
	p.pos = len(p.data)
	return "", p.fail("unterminated string starting at byte %d", start-1)
slow:
	var sb strings.Builder
	for i := start; i < len(p.data); i++ {
		c := p.data[i]
		switch c {
		case '"':
			p.pos = i + 1
			return sb.String(), nil
		case '\\':
			i++
			if i == len(p.data) {
				p.pos = i
				return "", p.fail("unterminated string starting at byte %d", start-1)
			}
			switch c = p.data[i]; c {
			case 'n':
				c = '\n'
			case 'r':
				c = '\r'
			case 't':
				c = '\t'
			}
		}
		sb.WriteByte(c)
	}
	p.pos = len(p.data)
	return "", p.fail("unterminated string starting at byte %d", start-1)
}

// list parses "[" item ("," item)* "]" calling item for each element.
func (p *parser) list(item func() error) error {
	if err := p.expect("["); err != nil {
		return err
	}
	if p.peek(']') {
		p.pos++
		return nil
	}
	for {
		if err := item(); err != nil {
			return err
		}
		if p.peek(',') {
			p.pos++
			continue
		}
		return p.expect("]")
	}
}

func (p *parser) strList(what string, set bool) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	err := p.list(func() error {
		at := p.pos
		s, err := p.str()
		if err != nil {
			return err
		}
		if set {
			if seen[s] {
				return &ParseError{Offset: at, Msg: fmt.Sprintf("duplicate %s %q", what, s)}
			}
			seen[s] = true
		}
		out = append(out, s)
		return nil
	})
	return out, err
}

func (p *parser) storePath(what string) (string, error) {
	at := p.pos
	s, err := p.str()
	if err != nil {
		return "", err
	}
	if _, err := storepath.Parse(s); err != nil {
		return "", &ParseError{Offset: at, Msg: fmt.Sprintf("%s: %v", what, err)}
	}
	return s, nil
}

// Parse reads a .drv file's ATerm. Besides what C++ Nix checks, it refuses
// duplicate outputs, input derivations, sources and env keys, and anything
// after the closing parenthesis.
func Parse(data []byte) (*Derivation, error) {
	p := &parser{data: data}
	d := New()
	if err := p.expect("Derive("); err != nil {
		return nil, err
	}
	err := p.list(func() error {
		at := p.pos
		if err := p.expect("("); err != nil {
			return err
		}
		name, err := p.str()
		if err != nil {
			return err
		}
		var o Output
		for _, f := range []*string{&o.Path, &o.HashAlgo, &o.Hash} {
			if err := p.expect(","); err != nil {
				return err
			}
			if *f, err = p.str(); err != nil {
				return err
			}
		}
		if err := p.expect(")"); err != nil {
			return err
		}
		if _, dup := d.Outputs[name]; dup {
			return &ParseError{Offset: at, Msg: fmt.Sprintf("duplicate output %q", name)}
		}
		if o.Path != "" {
			if _, err := storepath.Parse(o.Path); err != nil {
				return &ParseError{Offset: at, Msg: fmt.Sprintf("output %q: %v", name, err)}
			}
		}
		d.Outputs[name] = o
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := p.expect(","); err != nil {
		return nil, err
	}
	err = p.list(func() error {
		at := p.pos
		if err := p.expect("("); err != nil {
			return err
		}
		path, err := p.storePath("input derivation")
		if err != nil {
			return err
		}
		if err := p.expect(","); err != nil {
			return err
		}
		outs, err := p.strList("output of "+path, true)
		if err != nil {
			return err
		}
		if err := p.expect(")"); err != nil {
			return err
		}
		if _, dup := d.InputDerivations[path]; dup {
			return &ParseError{Offset: at, Msg: fmt.Sprintf("duplicate input derivation %q", path)}
		}
		if outs == nil {
			outs = []string{}
		}
		d.InputDerivations[path] = outs
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := p.expect(","); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	err = p.list(func() error {
		at := p.pos
		s, err := p.storePath("input source")
		if err != nil {
			return err
		}
		if seen[s] {
			return &ParseError{Offset: at, Msg: fmt.Sprintf("duplicate input source %q", s)}
		}
		seen[s] = true
		d.InputSources = append(d.InputSources, s)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := p.expect(","); err != nil {
		return nil, err
	}
	if d.System, err = p.str(); err != nil {
		return nil, err
	}
	if err := p.expect(","); err != nil {
		return nil, err
	}
	if d.Builder, err = p.str(); err != nil {
		return nil, err
	}
	if err := p.expect(","); err != nil {
		return nil, err
	}
	if d.Args, err = p.strList("arg", false); err != nil {
		return nil, err
	}
	if err := p.expect(","); err != nil {
		return nil, err
	}
	err = p.list(func() error {
		at := p.pos
		if err := p.expect("("); err != nil {
			return err
		}
		k, err := p.str()
		if err != nil {
			return err
		}
		if err := p.expect(","); err != nil {
			return err
		}
		v, err := p.str()
		if err != nil {
			return err
		}
		if err := p.expect(")"); err != nil {
			return err
		}
		if _, dup := d.Env[k]; dup {
			return &ParseError{Offset: at, Msg: fmt.Sprintf("duplicate env key %q", k)}
		}
		d.Env[k] = v
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := p.expect(")"); err != nil {
		return nil, err
	}
	if p.pos != len(p.data) {
		return nil, p.fail("%d bytes of trailing data", len(p.data)-p.pos)
	}
	return d, nil
}
