# Benchmark expression: a chain of n derivations (each depending on the
# previous one) plus n derivations side by side that all use the chain's
# end and a toFile source.
{ n ? 2000 }:
let
  mk = a: derivation ({ builder = "/bin/sh"; system = "x86_64-linux"; } // a);
  script = builtins.toFile "build.sh" "echo building";
  step = prev: i: mk {
    name = "chain-${toString i}";
    inherit prev script;
    args = [ "-c" "echo ${toString i}" ];
    extra = builtins.genList (j: "v${toString j}") 10;
  };
  chain = builtins.foldl' step (mk { name = "root"; }) (builtins.genList (i: i) n);
  wide = builtins.genList (i: mk { name = "wide-${toString i}"; dep = chain; outputs = [ "out" "dev" ]; }) n;
in [ chain ] ++ wide
