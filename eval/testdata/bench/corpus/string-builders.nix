# string builders: concatMapStrings, concatStringsSep, escapeShellArg(s), makeBinPath and
# toShellVars over 20,000 items, as builders and wrappers assemble scripts
{ lib }:
let
  n = 20000;
  items = builtins.genList (i: "file ${toString i}'s name") n;
  script = lib.concatMapStrings (x: "echo ${lib.escapeShellArg x}\n") items;
  args = lib.escapeShellArgs items;
  paths = lib.makeBinPath (builtins.genList (i: "/nix/store/${toString i}-p") 2000);
  vars = lib.toShellVars (lib.listToAttrs (builtins.genList (i: lib.nameValuePair "v${toString i}" "x'${toString i}") 2000));
in builtins.stringLength script + builtins.stringLength args + builtins.stringLength paths + builtins.stringLength vars
