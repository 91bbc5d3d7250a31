{ n ? 100000 }:
let xs = builtins.genList (i: (i * 7919) - (i / 3) * 23753) n;
in builtins.head (builtins.sort builtins.lessThan xs)
