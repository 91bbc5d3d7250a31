// Package eval is the pure Nix language, as Nix 2.8 evaluates it: syntax
// trees (package syntax) compiled to Go closures, lazy values, and the
// builtins that need nothing but the language and files.
//
// Files are reached only through the IO interface: OSIO is the local file
// system, glue.StoreIO serves store paths from castore, tests pass an
// in-memory one. So the package imports no store; what needs one comes in
// through Options. Package glue installs derivationStrict, toFile, path,
// filterSource and storePath as Options.Builtins, `derivation` (written in
// Nix, DerivationNix) as Options.NixBuiltins, and Options.CopyToStore for
// paths used as strings. Without glue the store builtins fail with a
// message saying so, and a path used as a string gets the store path a
// copy would have, computed without writing (as nix-instantiate --eval
// --readonly-mode does).
//
// Entry points: New makes an Evaluator; EvalExpr and EvalFile evaluate to
// weak head normal form, CheckParse parses and resolves names only. Inside
// the evaluator errors are panics of *Error, so that deep recursion needs
// no error checks; EvalExpr, EvalFile and Run (around ForceDeep, Call1,
// FindAttrPath, AutoCall, ToJSON, ToXML, PrintValue) turn them into
// returned errors. Builtins written elsewhere raise them with Throwf and
// ThrowKind. The nix-instantiate command line is package evalcli; Repl is
// the interactive loop.
package eval
