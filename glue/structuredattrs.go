package glue

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/tvix-go/tvix/nix/derivation"
)

type attrsFile struct {
	name     string
	contents []byte
}

// structuredAttrs makes .attrs.json and .attrs.sh as Nix 2.8 writes them
// for a derivation with __structuredAttrs: the attributes with "outputs"
// set to the output paths; in .attrs.sh, those a shell can hold as
// variables (strings, integers, booleans, null, and lists and attribute
// sets of those) as bash declarations.
func structuredAttrs(js string, outputs map[string]derivation.Output) ([]attrsFile, error) {
	dec := json.NewDecoder(strings.NewReader(js))
	dec.UseNumber()
	var attrs map[string]any
	if err := dec.Decode(&attrs); err != nil {
		return nil, fmt.Errorf("structured attributes: %w", err)
	}
	outs := map[string]any{}
	for name, o := range outputs {
		outs[name] = o.Path
	}
	attrs["outputs"] = outs
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(attrs); err != nil {
		return nil, fmt.Errorf("structured attributes: %w", err)
	}
	jsonFile := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))

	keys := make([]string, 0, len(attrs))
	for k := range attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sh strings.Builder
	for _, k := range keys {
		if !shellVarName.MatchString(k) {
			continue
		}
		v := attrs[k]
		if s, ok := shellSimple(v); ok {
			fmt.Fprintf(&sh, "declare %s=%s\n", k, s)
			continue
		}
		switch v := v.(type) {
		case []any:
			var b strings.Builder
			good := true
			for _, e := range v {
				s, ok := shellSimple(e)
				if !ok {
					good = false
					break
				}
				b.WriteString(s + " ")
			}
			if good {
				fmt.Fprintf(&sh, "declare -a %s=(%s)\n", k, b.String())
			}
		case map[string]any:
			names := make([]string, 0, len(v))
			for n := range v {
				names = append(names, n)
			}
			sort.Strings(names)
			var b strings.Builder
			good := true
			for _, n := range names {
				s, ok := shellSimple(v[n])
				if !ok {
					good = false
					break
				}
				fmt.Fprintf(&b, "[%s]=%s ", shellEscape(n), s)
			}
			if good {
				fmt.Fprintf(&sh, "declare -A %s=(%s)\n", k, b.String())
			}
		}
	}
	return []attrsFile{{".attrs.json", jsonFile}, {".attrs.sh", []byte(sh.String())}}, nil
}

var shellVarName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// shellSimple renders a value a shell variable can hold, as Nix 2.8 does:
// floats are left out.
func shellSimple(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return shellEscape(v), true
	case json.Number:
		if _, err := v.Int64(); err == nil {
			return v.String(), true
		}
		return "", false
	case bool:
		if v {
			return "1", true
		}
		return "", true
	case nil:
		return "''", true
	}
	return "", false
}

// shellEscape single-quotes s for a shell.
func shellEscape(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
