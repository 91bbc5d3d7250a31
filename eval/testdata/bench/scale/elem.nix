# elem against a list of fixed size, n times
{ n ? 20000 }:
let small = builtins.genList (i: "x${toString i}") 100;
in builtins.length (builtins.filter (i: builtins.elem "x${toString (builtins.bitAnd i 127)}" small) (builtins.genList (i: i) n))
