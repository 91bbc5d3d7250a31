# a mkDerivation-like wrapper: 3000 derivations with many attributes (phases, flags, meta,
# env), inputs from earlier ones, output paths collected
{ lib }:
let
  n = 3000;
  mkDerivation = { pname, version, buildInputs ? [ ], meta ? { }, ... }@args:
    let
      attrs = removeAttrs args [ "meta" "passthru" ] // {
        name = "${pname}-${version}";
        system = "x86_64-linux";
        builder = "/bin/sh";
        args = [ "-e" "-c" "genericBuild" ];
        outputs = [ "out" "dev" ];
        configureFlags = [ "--prefix=$out" "--enable-shared" "--disable-static" ] ++ args.configureFlags or [ ];
        NIX_CFLAGS_COMPILE = lib.concatStringsSep " " (map (i: "-I${i.dev or i}/include") buildInputs);
        phases = [ "unpackPhase" "patchPhase" "configurePhase" "buildPhase" "installPhase" "fixupPhase" ];
      };
      drv = derivation attrs;
    in drv // { inherit meta; passthru = args.passthru or { }; };
  pkgs = builtins.genList (i: mkDerivation {
    pname = "pkg${toString i}";
    version = "${toString (i / 100)}.${toString (lib.mod i 100)}";
    buildInputs = lib.optionals (i > 0) [ (builtins.elemAt pkgs (i - 1)) ] ++ lib.optionals (i > 10) [ (builtins.elemAt pkgs (i / 3)) ];
    enableParallelBuilding = true;
    doCheck = lib.mod i 2 == 0;
    meta = { description = "package ${toString i}"; license = "mit"; platforms = [ "x86_64-linux" "aarch64-linux" ]; };
  }) n;
in builtins.stringLength (lib.concatMapStrings (p: p.outPath) pkgs)
