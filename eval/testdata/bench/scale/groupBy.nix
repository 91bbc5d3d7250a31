{ n ? 100000 }:
let g = builtins.groupBy (x: toString (builtins.bitAnd x 255)) (builtins.genList (i: i) n);
in builtins.length (builtins.attrNames g) + builtins.length g."7"
