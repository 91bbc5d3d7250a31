# makeOverridable and chains of override/overrideAttrs-like updates on 2,000 packages
{ lib }:
let
  n = 2000;
  mk = lib.makeOverridable ({ name, version ? "1", flags ? [ ], withFoo ? false }:
    let self = { inherit name version flags withFoo; id = "${name}-${version}"; overrideAttrs = f: self // f self; }; in self);
  pkgs = builtins.genList (i: mk { name = "p${toString i}"; }) n;
  changed = map (p: ((p.override { version = "2"; }).override (old: { flags = old.flags or [ ] ++ [ "-O2" ]; withFoo = true; })).overrideAttrs (old: { id = old.id + "-patched"; })) pkgs;
in [ (builtins.length (lib.filter (p: p.withFoo) changed)) (lib.last changed).id (builtins.length (lib.last changed).flags) ]
