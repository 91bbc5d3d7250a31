{ n ? 100000 }:
builtins.length (builtins.concatMap (x: [ x x (x + 1) ]) (builtins.genList (i: i) n))
