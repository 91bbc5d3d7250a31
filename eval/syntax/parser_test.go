package syntax

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

func parse(s string) (Node, error) { return Parse(NewSource("«test»", []byte(s))) }

func TestParsePrint(t *testing.T) {
	cases := []struct{ in, want string }{
		{`1 + 2 * 3`, `(1 + (2 * 3))`},
		{`a - b - c`, `((a - b) - c)`},
		{`a ++ b ++ c`, `(a ++ (b ++ c))`},
		{`a // b // c`, `(a // (b // c))`},
		{`a -> b -> c`, `(a -> (b -> c))`},
		{`!a && b || c`, `(((!a) && b) || c)`},
		{`!a + b`, `(!(a + b))`},
		{`-a * b`, `((-a) * b)`},
		{`f x y`, `(f x y)`},
		{`f x.y or z`, `(f (x).y or z)`},
		{`a ? b.c`, `(a ? b.c)`},
		{`x: y: x`, `(x: (y: x))`},
		{`{ a, b ? 1, ... }@args: a`, `({ a, b ? 1, ... } @ args: a)`},
		{`args@{ a }: a`, `({ a } @ args: a)`},
		{`{ }: 1`, `({  }: 1)`},
		{`let a = 1; in a`, `(let a = 1; in a)`},
		{`let { body = 1; }`, `(rec { body = 1; }).body`},
		{`rec { a = 1; inherit b; inherit (c) d; }`, `rec { a = 1; inherit b; inherit (c) d; }`},
		{`{ a.b = 1; a.c = 2; }`, `{ a = { b = 1; c = 2; }; }`},
		{`{ ${x} = 1; "y" = 2; }`, `{ y = 2; ${x} = 1; }`},
		{`"a${b}c"`, `"a${b}c"`},
		{`"\n\t\\\"\${"`, `"\n\t\\\"\${"`},
		{`./a/b`, `./a/b`},
		{`~/a`, `~/a`},
		{`<nixpkgs/lib>`, `<nixpkgs/lib>`},
		{`http://example.org/x?y=z`, `"http://example.org/x?y=z"`},
		{`a/b`, `a/b`},
		{`1.5e3`, `1500`},
		{`.5`, `0.5`},
		{`if a then b else c`, `(if a then b else c)`},
		{`assert a; b`, `assert a; b`},
		{`with a; b`, `(with a; b)`},
		{`x.${y}.z`, `(x).${y}.z`},
		{"# comment\n/* block */ 1", `1`},
		{"a\r\n+ b", `(a + b)`},
		{`f or`, `(f or)`},
	}
	for _, c := range cases {
		n, err := parse(c.in)
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if got := Print(n); got != c.want {
			t.Errorf("%q: got %s, want %s", c.in, got, c.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct{ in, msg string }{
		{`1 +`, "unexpected end of file"},
		{`"abc`, "unexpected end of file, expecting '\"'"},
		{`''abc`, "unexpected end of file, expecting IND_STR or DOLLAR_CURLY or IND_STRING_CLOSE"},
		{`/* x`, "unterminated comment"},
		{`{ a = 1; a = 2; }`, "attribute 'a' already defined"},
		{`{ a, a }: 1`, "duplicate formal function argument 'a'"},
		{`a@{ a }: 1`, "duplicate formal function argument 'a'"},
		{`a == b == c`, "unexpected EQ"},
		{`let ${a} = 1; in 1`, "dynamic attributes not allowed in let"},
		{`./a/`, "has a trailing slash"},
		{`99999999999999999999`, "invalid integer"},
		{`f if`, "unexpected IF, expecting end of file"},
		{`{ a = 1 }`, "expecting ';'"},
		{"\x01", "unexpected character"},
	}
	for _, c := range cases {
		_, err := parse(c.in)
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("%q: got %v, want a ParseError", c.in, err)
			continue
		}
		if !strings.Contains(pe.Msg, c.msg) {
			t.Errorf("%q: got %q, want it to contain %q", c.in, pe.Msg, c.msg)
		}
	}
}

func TestIndentedStrings(t *testing.T) {
	cases := []struct{ in, want string }{
		{"''\n  a\n    b\n''", "a\n  b\n"},
		{"''  a''", "a"},
		{"''\n  a\n  ''", "a\n"},
		{"''a''$b''\\nc'''d''", "a$b\nc''d"},
		{"''\n\n  a\n\n''", "\na\n\n"},
	}
	for _, c := range cases {
		n, err := parse(c.in)
		if err != nil {
			t.Fatalf("%q: %v", c.in, err)
		}
		s, ok := n.(*Str)
		if !ok {
			t.Fatalf("%q: got %T", c.in, n)
		}
		if s.V != c.want {
			t.Errorf("%q: got %q, want %q", c.in, s.V, c.want)
		}
	}
}

func TestPositions(t *testing.T) {
	n, err := parse("let\n  x = 1;\nin\n  x + y")
	if err != nil {
		t.Fatal(err)
	}
	b := n.(*Let).Body.(*Binary)
	if l, c := b.R.P().LineCol(); l != 4 || c != 7 {
		t.Errorf("y at %d:%d, want 4:7", l, c)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{`1 + 2`, `{ a.b = 1; inherit (x) y; ${z} = 2; }`, `x: { a ? 1, ... }@y: a`,
		`"a${b}c"`, "''\n  x ${y}\n''", `./a/${b}/c`, `<nixpkgs>`, `let { body = 1; }`, `a.b or c`,
		`rec { a = [ 1 2.5 "s" ./p ~/h http://u ]; }`, `assert x; with y; if a then b else c`,
		`# c` + "\n" + `/* d */ !a -> b || c && d == e`, `"a\`, "''a${x}b", "{ a = 1 # c\n",
		"{ a0 = 0; a1 = 1; a2 = 2; a3 = 3; a4 = 4; a5 = 5; a6 = 6; a7 = 7; a8 = 8; a9 = 9; a10 = 10; " +
			"a11 = 11; a12 = 12; a13 = 13; a14 = 14; a15 = 15; x.a = 1; a16 = 16; x.b = 2; a3.c = 1; }"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			n, err := parse(s)
			if err == nil {
				_ = Print(n)
			} else {
				_ = err.Error() // the code around the position, Nix's way
			}
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("parser hangs on %q", s)
		}
	})
}

func TestDeepNesting(t *testing.T) {
	for _, s := range []string{
		strings.Repeat("(", 10000) + "1" + strings.Repeat(")", 10000),
		"1" + strings.Repeat(" + 1", 100000),
		strings.Repeat("x: ", 10000) + "1",
		strings.Repeat("{ a = ", 10000) + "1" + strings.Repeat("; }", 10000),
		strings.Repeat("!", 10000) + "true",
	} {
		_, err := parse(s)
		if err == nil || !strings.Contains(err.Error(), "nested too deeply") {
			t.Errorf("%.20q...: got %v, want a nesting error", s, err)
		}
	}
	if _, err := parse("1" + strings.Repeat(" + 1", 1000)); err != nil {
		t.Errorf("a chain of 1000 additions: %v", err)
	}
}

// TestBigSets: past bigSet attributes the parser finds names through its
// index; duplicates, paths into an attribute defined before and merges
// of nested sets must behave as in a small set.
func TestBigSets(t *testing.T) {
	var b strings.Builder
	b.WriteString("{")
	for i := 0; i < 3*bigSet; i++ {
		b.WriteString(" a" + strconv.Itoa(i) + " = " + strconv.Itoa(i) + ";")
	}
	big := b.String()
	n, err := parse(big + " x.a = 1; x.b = 2; a40 = { c = 1; }; }")
	if err == nil {
		t.Fatalf("a40 defined twice parsed: %s", Print(n))
	}
	if !strings.Contains(err.Error(), "attribute 'a40' already defined at «test»:1:") {
		t.Errorf("duplicate: %v", err)
	}
	n, err = parse(big + " x.a = 1; x.b = 2; y = { c = 1; }; y.d = 2; }")
	if err != nil {
		t.Fatal(err)
	}
	got := Print(n)
	if !strings.Contains(got, "x = { a = 1; b = 2; };") || !strings.Contains(got, "y = { c = 1; d = 2; };") {
		t.Errorf("nested sets not merged: %s", got)
	}
	if _, err := parse(big + " a3.b = 1; }"); err == nil || !strings.Contains(err.Error(), "attribute 'a3.b' already defined") {
		t.Errorf("path into a value: %v", err)
	}
}
