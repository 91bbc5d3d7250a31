# a dependency graph walked as nixpkgs' closure helpers do: two edges per node
{ n ? 40000 }:
builtins.length (builtins.genericClosure {
  startSet = [ { key = 0; } ];
  operator = x: if x.key >= n then [ ] else [ { key = x.key + 1; } { key = x.key * 2 + 1; } ];
})
