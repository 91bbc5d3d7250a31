# closures: the runtime closure of 10,000 packages with a few dependencies each, walked by
# genericClosure keyed by name, then per package the transitive closure size of a few roots
{ lib }:
let
  n = 10000;
  dep = i: lib.optionals (i > 0) ([ (i - 1) (i / 2) ] ++ lib.optional (i > 7) (i / 7));
  node = i: { key = "pkg${toString i}"; inherit i; };
  closure = roots: builtins.genericClosure { startSet = map node roots; operator = x: map node (dep x.i); };
  all = closure [ (n - 1) ];
  some = map (r: builtins.length (closure [ r ])) [ 100 1000 5000 ];
in [ (builtins.length all) some ]
