# regular expressions: parseDrvName, splitString, match-based parsing of names and versions,
# hasPrefix/hasSuffix filters, as nixpkgs' update scripts and lib.strings do
{ lib }:
let
  n = 12000;
  names = builtins.genList (i: "python3.${toString (lib.mod i 13)}-package-${toString i}-${toString (i / 100)}.${toString (lib.mod i 100)}rc1") n;
  parsed = map builtins.parseDrvName names;
  parts = map (s: lib.splitString "-" s) names;
  m = map (s: builtins.match "python([0-9])\\.([0-9]+)-(.*)-([0-9.]+)(rc[0-9]+)?" s) names;
  ok = lib.filter (x: x != null && lib.hasPrefix "package" (builtins.elemAt x 2)) m;
  sp = map (s: builtins.length (builtins.split "([0-9]+)" s)) names;
in [ (builtins.length ok) (lib.foldl' (a: p: a + builtins.length p) 0 parts) (lib.foldl' (a: b: a + b) 0 sp) (builtins.elemAt parsed 77).version ]
