# derivationStrict with many inputs: one derivation depending on n others
{ n ? 2000 }:
let
  deps = builtins.genList (i: derivation { name = "dep${toString i}"; system = "x86_64-linux"; builder = "/bin/sh"; }) n;
  top = derivation { name = "top"; system = "x86_64-linux"; builder = "/bin/sh"; buildInputs = deps; args = [ "-c" (toString deps) ]; };
in builtins.stringLength top.drvPath
