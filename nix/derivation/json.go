package derivation

import (
	"bufio"
	"io"
)

// WriteJSON writes derivations keyed by .drv path exactly as
// `nix show-derivation` (Nix 2.8) prints them: paths sorted, two-space
// indentation, fields in Nix's order, strings escaped like Nix's JSON
// writer (", \, \n, \r, \t and \u00XX for other control bytes; every other
// byte raw, so non-UTF-8 values come out unchanged).
func WriteJSON(w io.Writer, drvs map[string]*Derivation) error {
	bw := bufio.NewWriter(w)
	j := &jsonWriter{w: bw}
	paths := sortedKeys(drvs)
	j.open('{')
	for i, p := range paths {
		j.key(i, 1, p)
		drvs[p].writeJSON(j, 1)
	}
	j.close('}', 0, len(paths))
	bw.WriteByte('\n')
	return bw.Flush()
}

func (d *Derivation) writeJSON(j *jsonWriter, depth int) {
	j.open('{')
	n := 0
	field := func(k string) { j.key(n, depth+1, k); n++ }

	field("outputs")
	j.open('{')
	outs := sortedKeys(d.Outputs)
	for i, name := range outs {
		o := d.Outputs[name]
		j.key(i, depth+2, name)
		j.open('{')
		m := 0
		sub := func(k, v string) { j.key(m, depth+3, k); j.str(v); m++ }
		sub("path", o.Path)
		if o.HashAlgo != "" {
			sub("hashAlgo", o.HashAlgo)
			if o.Hash != "" {
				sub("hash", o.Hash)
			}
		}
		j.close('}', depth+2, m)
	}
	j.close('}', depth+1, len(outs))

	field("inputSrcs")
	j.strList(sortedSet(d.InputSources), depth+1)

	field("inputDrvs")
	j.open('{')
	ins := sortedKeys(d.InputDerivations)
	for i, p := range ins {
		j.key(i, depth+2, p)
		j.strList(sortedSet(d.InputDerivations[p]), depth+2)
	}
	j.close('}', depth+1, len(ins))

	field("system")
	j.str(d.System)
	field("builder")
	j.str(d.Builder)
	field("args")
	j.strList(d.Args, depth+1)

	field("env")
	j.open('{')
	keys := sortedKeys(d.Env)
	for i, k := range keys {
		j.key(i, depth+2, k)
		j.str(d.Env[k])
	}
	j.close('}', depth+1, len(keys))

	j.close('}', depth, n)
}

type jsonWriter struct{ w *bufio.Writer }

func (j *jsonWriter) indent(depth int) {
	j.w.WriteByte('\n')
	for i := 0; i < depth; i++ {
		j.w.WriteString("  ")
	}
}

func (j *jsonWriter) open(c byte) { j.w.WriteByte(c) }

// close ends an object or list of n elements; empty ones stay on one line.
func (j *jsonWriter) close(c byte, depth, n int) {
	if n > 0 {
		j.indent(depth)
	}
	j.w.WriteByte(c)
}

// key starts the i-th member of an object at depth.
func (j *jsonWriter) key(i, depth int, k string) {
	if i > 0 {
		j.w.WriteByte(',')
	}
	j.indent(depth)
	j.str(k)
	j.w.WriteString(": ")
}

func (j *jsonWriter) strList(l []string, depth int) {
	j.open('[')
	for i, s := range l {
		if i > 0 {
			j.w.WriteByte(',')
		}
		j.indent(depth + 1)
		j.str(s)
	}
	j.close(']', depth, len(l))
}

const hexDigits = "0123456789abcdef"

func (j *jsonWriter) str(s string) {
	w := j.w
	w.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			w.WriteByte('\\')
			w.WriteByte(c)
		case c == '\n':
			w.WriteString(`\n`)
		case c == '\r':
			w.WriteString(`\r`)
		case c == '\t':
			w.WriteString(`\t`)
		case c < 0x20:
			w.WriteString(`\u00`)
			w.WriteByte(hexDigits[c>>4])
			w.WriteByte(hexDigits[c&0xf])
		default:
			w.WriteByte(c)
		}
	}
	w.WriteByte('"')
}
