# callPackage: 4000 package functions called with arguments taken from the set by name
# (lib.callPackageWith, functionArgs, override)
{ lib }:
let
  n = 4000;
  mkPkg = i: { stdenv, lib, fetchurl ? null, dep0 ? null, dep1 ? null, enableX ? false, ... }:
    { name = "p${toString i}"; deps = lib.filter (d: d != null) [ dep0 dep1 ]; x = enableX; sys = stdenv.system; };
  pkgs = lib.fix (self:
    let callPackage = lib.callPackageWith (self // { inherit lib; }); in
    { stdenv = { system = "x86_64-linux"; }; fetchurl = u: u; }
    // lib.listToAttrs (builtins.genList (i: lib.nameValuePair "p${toString i}" (callPackage (mkPkg i) (
      lib.optionalAttrs (i > 0) { dep0 = self."p${toString (i - 1)}"; }
      // lib.optionalAttrs (i > 1) { dep1 = self."p${toString (i / 2)}"; }
    ))) n));
  over = builtins.genList (i: (pkgs."p${toString i}".override { enableX = true; }).x) 500;
in [ (lib.foldl' (a: i: a + builtins.length pkgs."p${toString i}".deps) 0 (lib.range 0 (n - 1))) (builtins.length (lib.filter (x: x) over)) ]
