# match and split on many strings, as version parsing and splitString do
{ n ? 20000 }:
let
  vs = builtins.genList (i: "foo-${toString (i / 100)}.${toString (builtins.bitAnd i 99)}.3-pre") n;
  ms = map (v: builtins.match "([a-z]+)-([0-9]+)\\.([0-9]+).*" v) vs;
  ss = map (v: builtins.length (builtins.split "[.-]" v)) vs;
in builtins.length (builtins.filter (m: m != null) ms) + builtins.foldl' (a: b: a + b) 0 ss
