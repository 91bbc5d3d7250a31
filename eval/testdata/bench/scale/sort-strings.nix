# sort by a comparator over strings, as lib.sort on names
{ n ? 30000 }:
let xs = builtins.genList (i: "pkg-${toString ((i * 7919) - (i / 7) * 55433)}") n;
in builtins.head (builtins.sort (a: b: a < b) xs)
