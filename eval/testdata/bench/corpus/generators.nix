# configuration generators: toINI, toKeyValue, toPretty and mkValueString over settings of
# 3,000 entries, as services render their config files
{ lib }:
let
  n = 3000;
  sections = lib.listToAttrs (builtins.genList (i: lib.nameValuePair "section${toString i}" {
    enable = lib.mod i 2 == 0; port = 1000 + i; name = "svc-${toString i}"; ratio = 0.5;
  }) n);
  ini = lib.generators.toINI { } sections;
  kv = lib.generators.toKeyValue { } (lib.mapAttrs (_: v: v.name) sections);
  pretty = lib.generators.toPretty { } (lib.take 300 (lib.attrValues sections));
in builtins.stringLength ini + builtins.stringLength kv + builtins.stringLength pretty
