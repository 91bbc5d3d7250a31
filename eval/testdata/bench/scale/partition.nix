{ n ? 200000 }:
let p = builtins.partition (x: builtins.bitAnd x 1 == 0) (builtins.genList (i: i) n);
in builtins.length p.right - builtins.length p.wrong
