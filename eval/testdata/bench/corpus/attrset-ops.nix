# attribute-set library functions over a package set: mapAttrs', filterAttrs,
# recursiveUpdate, zipAttrsWith, foldAttrs, attrsToList, collect
{ lib }:
let
  n = 2000;
  set = lib.listToAttrs (builtins.genList (i: lib.nameValuePair "p${toString i}" { i = i; meta.priority = lib.mod i 10; outputs = [ "out" ]; }) n);
  renamed = lib.mapAttrs' (k: v: lib.nameValuePair "${k}-renamed" v) set;
  high = lib.filterAttrs (_: v: v.meta.priority > 5) set;
  upd = lib.recursiveUpdate set (lib.mapAttrs (_: v: { meta.priority = 0; }) high);
  zipped = lib.zipAttrsWith (_: vs: builtins.length vs) [ set renamed upd ];
  folded = lib.foldAttrs (x: acc: acc + x.meta.priority) 0 [ set upd ];
  collected = lib.collect (x: builtins.isInt x) upd;
in [ (builtins.length (lib.attrNames high)) (builtins.length (lib.attrNames zipped)) folded.p7 (builtins.length collected) ]
