{ n ? 500000 }:
builtins.foldl' (acc: x: acc + x * 2) 0 (builtins.genList (i: i) n)
