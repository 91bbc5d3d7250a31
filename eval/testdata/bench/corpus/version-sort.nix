# version handling: 15,000 versions sorted with versionOlder, split and compared, the newest
# per name picked, as package updaters and lib.versions do
{ lib }:
let
  n = 15000;
  vs = builtins.genList (i: "${toString (lib.mod (i * 7) 13)}.${toString (lib.mod (i * 11) 101)}.${toString (lib.mod i 7)}${if lib.mod i 5 == 0 then "pre" else ""}") n;
  sorted = lib.sort lib.versionOlder vs;
  majors = lib.groupBy lib.versions.major vs;
  newest = lib.mapAttrs (_: l: lib.foldl' (a: b: if lib.versionAtLeast b a then b else a) "0" l) majors;
in [ (lib.head sorted) (lib.last sorted) (builtins.length (lib.attrNames newest)) (lib.versions.majorMinor (lib.last sorted)) ]
