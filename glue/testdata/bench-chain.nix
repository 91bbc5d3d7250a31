# Benchmark expression (scripts/bench-derivation): a chain of n
# derivations, each depending on the previous one and on a toFile source;
# nix-instantiate prints the last one's .drv path.
{ n ? 10000 }:
let
  mk = a: derivation ({ builder = "/bin/sh"; system = "x86_64-linux"; } // a);
  script = builtins.toFile "build.sh" "echo building";
  step = prev: i: mk {
    name = "chain-${toString i}";
    inherit prev script;
    args = [ "-c" "echo ${toString i}" ];
  };
in builtins.foldl' step (mk { name = "root"; inherit script; }) (builtins.genList (i: i) n)
