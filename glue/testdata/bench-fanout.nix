# Benchmark expression (scripts/bench-derivation): n two-output
# derivations side by side, all depending on one base derivation and a
# toFile source; nix-instantiate prints every one's .drv path.
{ n ? 10000 }:
let
  mk = a: derivation ({ builder = "/bin/sh"; system = "x86_64-linux"; } // a);
  script = builtins.toFile "build.sh" "echo building";
  base = mk { name = "base"; inherit script; };
in builtins.genList (i: mk {
  name = "fan-${toString i}";
  inherit base script;
  outputs = [ "out" "dev" ];
  args = [ "-c" "echo ${toString i}" ];
}) n
