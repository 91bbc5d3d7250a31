# one set literal of n attributes, as all-packages.nix is (~20,000): the script writes
# $IMPORTS/set25000.nix ... first (see scripts/bench-eval)
{ n ? 25000, dir }:
let s = import (dir + "/set${toString n}.nix"); in
builtins.length (builtins.attrNames s) + builtins.stringLength s."p${toString (n - 1)}".version
