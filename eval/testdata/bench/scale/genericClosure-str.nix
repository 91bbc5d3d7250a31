# string keys, as closures keyed by store path or name
{ n ? 20000 }:
builtins.length (builtins.genericClosure {
  startSet = [ { key = "p0"; i = 0; } ];
  operator = x: if x.i >= n then [ ] else [ { key = "p${toString (x.i + 1)}"; i = x.i + 1; } { key = "p${toString (x.i / 2)}"; i = x.i / 2; } ];
})
