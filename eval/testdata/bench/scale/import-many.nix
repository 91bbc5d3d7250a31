# import of many files: the script writes $IMPORTS/f0.nix ... first (see scripts/bench-eval)
{ n ? 1000, dir }:
builtins.foldl' (a: i: a + (import (dir + "/f${toString i}.nix") { inherit i; }).v) 0 (builtins.genList (i: i) n)
