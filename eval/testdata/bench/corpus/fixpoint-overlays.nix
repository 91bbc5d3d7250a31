# a package set as a fixed point, extended by 60 overlays (lib.extends), each touching
# some packages through final and prev, as nixpkgs' overlays do
{ lib }:
let
  n = 3000;
  names = builtins.genList (i: "pkg${toString i}") n;
  base = final: lib.genAttrs names (name: { inherit name; version = "1.0"; deps = [ ]; });
  overlay = k: final: prev:
    lib.listToAttrs (builtins.genList (j:
      let name = "pkg${toString (lib.mod (j * 31 + k * 97) n)}"; in
      lib.nameValuePair name (prev.${name} // {
        version = "1.${toString k}";
        deps = prev.${name}.deps ++ [ final."pkg${toString (lib.mod (j + k) n)}".name ];
      })) 1000);
  set = lib.fix (lib.foldl' (f: k: lib.extends (overlay k) f) base (lib.range 1 60));
in lib.foldl' (a: name: a + builtins.length set.${name}.deps) 0 names
