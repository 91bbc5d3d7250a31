# attrNames, attrValues, mapAttrs, removeAttrs and intersectAttrs on a large set
{ n ? 50000 }:
let
  s = builtins.listToAttrs (builtins.genList (i: { name = "k${toString i}"; value = i; }) n);
  m = builtins.mapAttrs (k: v: v * 2) s;
  r = builtins.removeAttrs m (builtins.genList (i: "k${toString (i * 2)}") (n / 2));
  x = builtins.intersectAttrs r s;
in builtins.foldl' (a: b: a + b) 0 (builtins.attrValues x) + builtins.length (builtins.attrNames m)
