# (added 2026-12-02, not tuned on) text processing with lib.strings: a generated 20,000-line
# "config file" split into lines and fields, trimmed, filtered by prefix, case-changed,
# version-compared and escaped back into shell and Nix strings
{ lib }:
let
  n = 20000;
  line = i: "  key${toString i} = value-${toString (i * 7)} # v${toString (lib.mod i 5)}.${toString (lib.mod i 11)}  ";
  text = lib.concatMapStringsSep "\n" line (lib.range 1 n);
  lines = lib.splitString "\n" text;
  parse = l:
    let
      t = lib.removeSuffix "  " (lib.removePrefix "  " l);
      parts = lib.splitString " # " t;
      kv = lib.splitString " = " (builtins.head parts);
    in { key = builtins.head kv; value = builtins.elemAt kv 1; version = builtins.elemAt parts 1; };
  entries = map parse lines;
  newer = builtins.filter (e: lib.versionAtLeast (lib.removePrefix "v" e.version) "3.5") entries;
  shell = lib.concatMapStringsSep " " (e: lib.escapeShellArg "${lib.toUpper e.key}=${e.value}") newer;
  nixed = lib.concatMapStrings (e: lib.strings.escapeNixString e.value) (lib.take 2000 entries);
  keyed = lib.filter (e: lib.hasPrefix "key1" e.key && lib.hasSuffix "7" e.value) entries;
in builtins.stringLength shell + builtins.stringLength nixed + builtins.length keyed
