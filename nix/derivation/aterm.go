package derivation

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"slices"
	"sort"
	"strings"
	"sync"
	"unsafe"

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
	w := atermWriter{buf: make([]byte, 0, d.sizeHint())}
	in := d.sortedInputs()
	d.writeATerm(&w, *in)
	putInputs(in)
	return w.buf
}

// ATermSHA256 is the sha256 of ATerm(), computed without keeping the
// bytes (read-only mode needs only the .drv's path).
func (d *Derivation) ATermSHA256() [32]byte {
	in := d.sortedInputs()
	h := d.hashATerm(*in)
	putInputs(in)
	return h
}

// atermInput is one entry of an ATerm's input derivations: a .drv path,
// or (path "") the modulo hash that stands for one, written as hex.
type atermInput struct {
	path   string
	modulo [32]byte
	outs   []string
}

// sortedInputs are d's input derivations in the order an ATerm lists them,
// in a recycled slice (a derivation's inputs are listed three times while
// derivationStrict makes it); hand it back with putInputs.
func (d *Derivation) sortedInputs() *[]atermInput {
	p := inputBufs.Get().(*[]atermInput)
	in := (*p)[:0]
	for path, outs := range d.InputDerivations {
		in = append(in, atermInput{path: path, outs: outs})
	}
	slices.SortFunc(in, func(a, b atermInput) int { return strings.Compare(a.path, b.path) })
	*p = in
	return p
}

var inputBufs = sync.Pool{New: func() any { return new([]atermInput) }}

// putInputsMax is the most inputs a recycled list may have room for:
// the room of one derivation with thousands of inputs is not worth
// keeping for the many small ones.
const putInputsMax = 1024

func putInputs(p *[]atermInput) {
	if cap(*p) > putInputsMax {
		return
	}
	clear(*p) // keeps no strings of the derivation alive
	*p = (*p)[:0]
	inputBufs.Put(p)
}

// atermWriter collects an ATerm's bytes. With a hash it hands them on
// every atermSpill bytes: a derivation with thousands of inputs has an
// ATerm of megabytes, hashed twice while derivationStrict computes its
// paths, and a buffer holding it all (grown by doubling) was most of
// what such a derivation allocated (8,000 inputs: 12 of 55 MB).
type atermWriter struct {
	buf  []byte
	hash hash.Hash // nil: keep every byte
}

const atermSpill = 16 << 10

func (w *atermWriter) byte(c byte) { w.buf = append(w.buf, c) }

func (w *atermWriter) str(s string) {
	if w.hash != nil && len(s) >= atermSpill {
		w.spill()
		// Write keeps nothing of what it is given
		w.hash.Write(unsafe.Slice(unsafe.StringData(s), len(s)))
		return
	}
	w.buf = append(w.buf, s...)
	if w.hash != nil && len(w.buf) >= atermSpill {
		w.spill()
	}
}

func (w *atermWriter) spill() {
	w.hash.Write(w.buf)
	w.buf = w.buf[:0]
}

// atermHashers recycles the writers ATerms are hashed through. A new
// one's buffer is small (most ATerms are a few KB, and the pool empties
// at every collection) and grows to what the large ones need.
var atermHashers = sync.Pool{New: func() any {
	return &atermWriter{buf: make([]byte, 0, 4<<10), hash: sha256.New()}
}}

// hashATerm is the sha256 of the ATerm with the given input derivations,
// without keeping the ATerm.
func (d *Derivation) hashATerm(inputs []atermInput) [32]byte {
	w := atermHashers.Get().(*atermWriter)
	w.hash.Reset()
	d.writeATerm(w, inputs)
	w.spill()
	// summed into the writer's buffer: a [32]byte given to Sum through the
	// hash.Hash interface would be moved to the heap
	var h [32]byte
	copy(h[:], w.hash.Sum(w.buf[:0]))
	atermHashers.Put(w)
	return h
}

func (d *Derivation) writeATerm(w *atermWriter, inputs []atermInput) {
	w.str("Derive([")
	var kb [4]string // derivations have few outputs: the keys stay on the stack
	outs := kb[:0]
	for k := range d.Outputs {
		outs = append(outs, k)
	}
	slices.Sort(outs)
	for i, name := range outs {
		o := d.Outputs[name]
		if i > 0 {
			w.byte(',')
		}
		w.byte('(')
		writeRaw(w, name)
		w.byte(',')
		writeRaw(w, o.Path)
		w.byte(',')
		writeRaw(w, o.HashAlgo)
		w.byte(',')
		writeRaw(w, o.Hash)
		w.byte(')')
	}
	w.str("],[")
	for i, in := range inputs {
		if i > 0 {
			w.byte(',')
		}
		w.byte('(')
		if in.path != "" {
			writeRaw(w, in.path)
		} else {
			w.byte('"')
			w.buf = hex.AppendEncode(w.buf, in.modulo[:])
			w.byte('"')
		}
		w.str(",[")
		writeRawList(w, sortedSet(in.outs))
		w.str("])")
	}
	w.str("],[")
	writeRawList(w, sortedSet(d.InputSources))
	w.str("],")
	writeRaw(w, d.System)
	w.byte(',')
	writeEscaped(w, d.Builder)
	w.str(",[")
	for i, a := range d.Args {
		if i > 0 {
			w.byte(',')
		}
		writeEscaped(w, a)
	}
	w.str("],[")
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
			w.byte(',')
		}
		w.byte('(')
		writeEscaped(w, k)
		w.byte(',')
		writeEscaped(w, d.Env[k])
		w.byte(')')
	}
	w.str("])")
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
// std::set they come from would hold them: l itself when it already is
// (it mostly is: derivationStrict and Parse give sorted sets), so
// writing an ATerm allocates nothing for its lists.
func sortedSet(l []string) []string {
	if isSortedSet(l) {
		return l
	}
	s := slices.Clone(l)
	sort.Strings(s)
	return slices.Compact(s)
}

func isSortedSet(l []string) bool {
	for i := 1; i < len(l); i++ {
		if l[i-1] >= l[i] {
			return false
		}
	}
	return true
}

func writeRaw(w *atermWriter, s string) {
	w.byte('"')
	w.str(s)
	w.byte('"')
}

func writeRawList(w *atermWriter, l []string) {
	for i, s := range l {
		if i > 0 {
			w.byte(',')
		}
		writeRaw(w, s)
	}
}

func writeEscaped(w *atermWriter, s string) {
	w.byte('"')
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
		w.str(s[start:i])
		w.str(esc)
		start = i + 1
	}
	w.str(s[start:])
	w.byte('"')
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
