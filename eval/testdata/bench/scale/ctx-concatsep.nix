# the output paths of n derivations joined into one string (string-context union)
{ n ? 5000 }:
let
  drvs = builtins.genList (i: derivation { name = "p${toString i}"; system = "x86_64-linux"; builder = "/bin/sh"; }) n;
  s = builtins.concatStringsSep ":" (map (d: "${d}/bin") drvs);
in [ (builtins.stringLength s) (builtins.length (builtins.attrNames (builtins.getContext s))) ]
