package eval

import "testing"

// Printing without --strict, as nix-instantiate 2.8 prints (its answers):
// members Nix still holds as thunks are <CODE>, names are quoted where
// its isVarName refuses them.
func TestPrintLazy(t *testing.T) {
	cases := []struct{ expr, want string }{
		{`{ a = 1; b = 1 + 1; c = x: x; d = builtins.add; e = { }; f = "s"; }`, `{ a = 1; b = <CODE>; c = <CODE>; d = <CODE>; e = <CODE>; f = "s"; }`},
		{`[ (x: x) builtins.map (builtins.add 1) [ 1 ] ]`, `[ <CODE> <CODE> <CODE> <CODE> ]`},
		{`[ [ ] { } [ 1 ] ]`, `[ <CODE> <CODE> <CODE> ]`},
		{`x: x`, `<LAMBDA>`},
		{`builtins.add 1`, `<PRIMOP-APP>`},
		{`let s = { a = 1 + 1; }; in builtins.seq s.a s`, `{ a = 2; }`},
		{`rec { a = 1; b = a; }`, `{ a = 1; b = 1; }`},
		{`rec { b = 1; a = b; }`, `{ a = 1; b = 1; }`},
		{`rec { aa = zz; zz = 1; }`, `{ aa = <CODE>; zz = 1; }`},
		{`rec { a = 1; b = a; c = 3; __overrides = { a = 2; }; }`, `{ __overrides = { a = 2; }; a = 2; b = <CODE>; c = <CODE>; }`},
		{`let a = 1; b = a; in { inherit b; }`, `{ b = 1; }`},
		{`{ "if" = 1; "then" = 2; "or" = 3; "inherit" = 4; "a b" = 5; "1a" = 6; a-b = 7; "é" = 8; }`, `{ "1a" = 6; "a b" = 5; a-b = 7; "if" = 1; inherit = 4; or = 3; then = 2; "é" = 8; }`},
	}
	for _, c := range cases {
		got := render(t, c.expr, func(ev *Evaluator, v Value) string { return PrintLazy(ev, ev.Force(v)) })
		if got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.expr, got, c.want)
		}
	}
}

// XML as nix-instantiate 2.8 writes it (its answers): attributes of an
// element sorted, members Nix holds as thunks <unevaluated /> without
// --strict, and an expression's text as the path of its positions.
func TestToXML(t *testing.T) {
	const head = "<?xml version='1.0' encoding='utf-8'?>\n<expr>\n"
	cases := []struct {
		expr             string
		strict, location bool
		want             string
	}{
		{`{ a, b ? 1, ... }@args: a`, true, false, "  <function>\n    <attrspat ellipsis=\"1\" name=\"args\">\n      <attr name=\"a\" />\n      <attr name=\"b\" />\n    </attrspat>\n  </function>\n"},
		{`[ (x: x) [ ] { } 1 ]`, false, false, "  <list>\n    <unevaluated />\n    <unevaluated />\n    <unevaluated />\n    <int value=\"1\" />\n  </list>\n"},
		{`x: x`, false, true, "  <function column=\"1\" line=\"1\" path=\"x: x\">\n    <varpat name=\"x\" />\n  </function>\n"},
	}
	for _, c := range cases {
		got := render(t, c.expr, func(ev *Evaluator, v Value) string { return ev.ToXML(v, c.strict, c.location) })
		if want := head + c.want + "</expr>\n"; got != want {
			t.Errorf("%s:\n got %q\nwant %q", c.expr, got, want)
		}
	}
}

// render evaluates expr (as -E would) and renders its value with f.
func render(t *testing.T, expr string, f func(*Evaluator, Value) string) string {
	t.Helper()
	ev := newTestEval()
	v, err := ev.EvalExpr(expr, "«string»", "/test")
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	var got string
	if _, err := ev.Run(func() Value { got = f(ev, v); return nil }); err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return got
}
