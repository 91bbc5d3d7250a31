# a list grown by `++` in a fold: quadratic in Nix too (each step copies)
{ n ? 2500 }:
builtins.length (builtins.foldl' (acc: i: acc ++ [ i ]) [ ] (builtins.genList (i: i) n))
