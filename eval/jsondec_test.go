package eval

import (
	"encoding/json"
	"strings"
	"testing"
)

// decodeJSON agrees with the encoding/json path it short-cuts, and hands
// back what it does not take.
func TestDecodeJSON(t *testing.T) {
	valid := []string{
		`null`, `true`, ` false `, `0`, `-0`, `12`, `-9223372036854775808`, `1.5`, `-1e3`, `2E+2`, `1.0`,
		`""`, `"a\"b\\c\/d\b\f\n\r\t"`, `"\u00e9\u20ac\ud83d\ude00"`, `"é"`,
		`[]`, `[ 1, [ 2, [ ] ], { } ]`, `{"b": 1, "a": [true, null], "c": {"d": "e"}}`,
		`{"a": 1, "a": 2}`, "\n{ \"x\" :\t[ 1 ,2 ] }\r\n",
	}
	for _, s := range valid {
		got, ok := decodeJSON(s, nil)
		if !ok {
			t.Errorf("%s: not decoded", s)
			continue
		}
		ev := newTestEval()
		d := json.NewDecoder(strings.NewReader(s))
		d.UseNumber()
		var x any
		if err := d.Decode(&x); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		var g, w string
		if _, err := ev.Run(func() Value {
			g, w = PrintValue(ev, got, true), PrintValue(ev, ev.fromJSONValue(x), true)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if g != w {
			t.Errorf("%s: got %s, encoding/json gives %s", s, g, w)
		}
	}
	// invalid UTF-8 stays as it is, as in Nix
	if v, ok := decodeJSON("\"a\xffb\"", nil); !ok || v.(*String).S != "a\xffb" {
		t.Errorf("invalid UTF-8: %v %v", v, ok)
	}
	for _, s := range []string{
		``, `nul`, `01`, `1.`, `.5`, `1e`, `-`, `[1,]`, `[1 2]`, `{"a":1,}`, `{a:1}`, `{"a" 1}`,
		`"abc`, "\"a\nb\"", `"\x"`, `"\u12"`, `"\ud800"`, `"\ud800\u0041"`, `1 2`, `18446744073709551616`,
		`[` + strings.Repeat(`[`, maxJSONDepth+1),
	} {
		if v, ok := decodeJSON(s, nil); ok {
			t.Errorf("%q: decoded as %v, want it handed back", s, v)
		}
	}
}
