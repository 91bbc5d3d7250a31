{ n ? 50000 }:
let s = builtins.listToAttrs (builtins.genList (i: { name = "n${toString i}"; value = i; }) n);
in s."n${toString (n / 2)}" + builtins.length (builtins.attrNames s)
