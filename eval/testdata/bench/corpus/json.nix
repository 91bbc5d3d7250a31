# JSON: a package set's metadata rendered with toJSON and read back with fromJSON, and
# lib.generators.toJSON of settings
{ lib }:
let
  n = 8000;
  meta = lib.listToAttrs (builtins.genList (i: lib.nameValuePair "pkg${toString i}" {
    version = "1.${toString i}"; license = [ "mit" "bsd3" ]; broken = lib.mod i 13 == 0;
    maintainers = [ { name = "m${toString (lib.mod i 50)}"; github = "gh${toString i}"; } ];
    position = "pkgs/by-name/p${toString i}/package.nix:${toString (lib.mod i 300)}";
  }) n);
  js = builtins.toJSON meta;
  back = builtins.fromJSON js;
  settings = lib.generators.toJSON { } (lib.mapAttrs (_: v: { inherit (v) version broken; }) back);
in [ (builtins.stringLength js) (builtins.length (lib.attrNames (lib.filterAttrs (_: v: v.broken) back))) (builtins.stringLength settings) ]
