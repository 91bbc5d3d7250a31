package eval

// DerivationNix is `derivation` written in Nix around derivationStrict, as
// Nix ships it: it turns the {drvPath, <output> = path} set that
// derivationStrict returns into one attrset per output, all sharing the
// original attributes. The glue package installs it with
//
//	Options{NixBuiltins: map[string]string{"derivation": eval.DerivationNix},
//	        Builtins: map[string]Value{"derivationStrict": ...}}
const DerivationNix = `drvAttrs@{ outputs ? [ "out" ], ... }:
let
  strict = derivationStrict drvAttrs;
  perOutput = name: {
    inherit name;
    value = common // {
      outPath = builtins.getAttr name strict;
      drvPath = strict.drvPath;
      type = "derivation";
      outputName = name;
    };
  };
  outputsList = map perOutput outputs;
  common = drvAttrs // builtins.listToAttrs outputsList // {
    all = map (o: o.value) outputsList;
    inherit drvAttrs;
  };
in (builtins.head outputsList).value
`
