# non-tail recursion n deep, as a hand-written foldr over a list
{ n ? 10000 }:
let
  xs = builtins.genList (i: i) n;
  go = i: if i == n then 0 else builtins.elemAt xs i + go (i + 1);
in go 0
