{ n ? 20000 }:
let
  v = builtins.genList (i: { name = "p${toString i}"; version = "1.${toString i}"; deps = [ i (i + 1) ]; ok = true; f = 0.5; }) n;
  s = builtins.toJSON v;
  back = builtins.fromJSON s;
in builtins.stringLength s + builtins.length back
