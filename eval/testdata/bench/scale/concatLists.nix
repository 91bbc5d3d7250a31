# `++` of large lists and concatLists of many small ones
{ n ? 200000 }:
let
  a = builtins.genList (i: i) n;
  b = builtins.concatLists (builtins.genList (i: [ i (i + 1) ]) n);
  c = a ++ b ++ a;
in builtins.length c + builtins.elemAt c (n + 7)
