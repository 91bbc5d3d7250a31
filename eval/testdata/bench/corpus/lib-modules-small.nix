# nixpkgs lib.evalModules on a small configuration (50 options), as evaluating one NixOS
# service module does: the small end, where start-up and the collector's floor show
{ lib }:
let
  opts = builtins.genList (i: "opt${toString i}") 50;
  module = { config, ... }: {
    options = lib.genAttrs opts (n: lib.mkOption { type = lib.types.str; default = n; });
    config = lib.genAttrs (lib.take 25 opts) (n: lib.mkForce "${n}-set");
  };
  ev = lib.evalModules { modules = [ module ]; };
in lib.concatStrings (map (n: ev.config.${n}) opts)
