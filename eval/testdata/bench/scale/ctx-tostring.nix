# toString of a list of derivations, and the interpolation of pairs of them
{ n ? 5000 }:
let
  drvs = builtins.genList (i: derivation { name = "q${toString i}"; system = "x86_64-linux"; builder = "/bin/sh"; }) n;
  pairs = builtins.genList (i: "${builtins.elemAt drvs i}:${builtins.elemAt drvs (n - 1 - i)}") n;
  s = toString drvs + toString pairs;
in builtins.length (builtins.attrNames (builtins.getContext s))
