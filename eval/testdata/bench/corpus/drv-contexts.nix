# thousands of derivations with deep string contexts: layers of derivations whose builders
# and environments refer to the outputs of the layer below, joined into one profile
{ lib }:
let
  width = 200;
  layers = 15;
  mk = l: i: inputs: derivation {
    name = "l${toString l}-${toString i}";
    system = "x86_64-linux";
    builder = "/bin/sh";
    args = [ "-c" "echo ${lib.concatStringsSep " " (map (d: "${d}") inputs)} > $out" ];
    PATH = lib.makeBinPath inputs;
  };
  layer = l: if l == 0 then builtins.genList (i: mk 0 i [ ]) width
    else let below = layer (l - 1); in builtins.genList (i: mk l i [ (builtins.elemAt below i) (builtins.elemAt below (lib.mod (i + 1) width)) ]) width;
  top = layer layers;
  profile = lib.concatMapStringsSep ":" (d: "${d}/bin") top;
in [ (builtins.stringLength profile) (builtins.length (lib.attrNames (builtins.getContext profile))) ]
