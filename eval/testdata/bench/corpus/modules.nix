# the module system with 1,500 options of several types (str, bool, int, listOf, attrsOf,
# submodule), defined and merged across five modules, with mkIf/mkDefault/mkOverride
{ lib }:
let
  inherit (lib) mkOption types mkIf mkDefault mkMerge;
  k = 300;
  ids = builtins.genList (i: "s${toString i}") k;
  decl = {
    options.services = lib.genAttrs ids (id: {
      enable = mkOption { type = types.bool; default = false; };
      port = mkOption { type = types.port; default = 80; };
      name = mkOption { type = types.str; default = id; };
      extraArgs = mkOption { type = types.listOf types.str; default = [ ]; };
      settings = mkOption { type = types.attrsOf (types.submodule { options.value = mkOption { type = types.int; default = 0; }; }); default = { }; };
    });
  };
  m1 = { config, ... }: { services = lib.genAttrs ids (id: { enable = mkDefault true; extraArgs = [ "-v" ]; }); };
  m2 = { config, ... }: { services = lib.genAttrs ids (id: { port = mkIf config.services.${id}.enable 8080; extraArgs = [ "--${id}" ]; }); };
  m3 = { ... }: { services = lib.genAttrs ids (id: { settings.a.value = 1; settings.b.value = 2; }); };
  m4 = { config, ... }: { services.s0.enable = lib.mkForce false; services.s1.name = lib.mkOverride 50 "one"; };
  ev = lib.evalModules { modules = [ decl m1 m2 m3 m4 ]; };
  c = ev.config.services;
in lib.foldl' (a: id: a + c.${id}.port + builtins.length c.${id}.extraArgs + c.${id}.settings.b.value) 0 ids
