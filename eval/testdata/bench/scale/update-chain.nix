# `//` chains: a set built up by n small updates, as overlays and override do
{ n ? 20000 }:
let
  step = acc: i: acc // { "a${toString (builtins.bitAnd i 1023)}" = i; "last" = i; };
  r = builtins.foldl' step { } (builtins.genList (i: i) n);
in [ (builtins.length (builtins.attrNames r)) r.last ]
