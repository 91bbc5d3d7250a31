# (added 2026-12-02, not tuned on) a package scope as nixpkgs builds one: lib.makeScope with
# callPackage-style functions taking their dependencies by name, overrideScope, override and
# overrideAttrs on top, lib.recursiveUpdate of nested meta, lib.optionalAttrs/optionals
{ lib }:
let
  n = 6000;
  mk = i: { stdenv, fetch, libs ? [ ], withDocs ? false, ... }@args:
    stdenv.mkDerivation ({
      pname = "p${toString i}";
      version = "${toString (lib.mod i 7)}.${toString (lib.mod i 13)}";
      src = fetch "p${toString i}";
      buildInputs = libs ++ lib.optionals withDocs [ "doc-tools" ];
      meta = lib.recursiveUpdate { license = { free = true; }; platforms = [ "x86_64-linux" ]; } { license.spdx = "MIT"; position = i; };
    } // lib.optionalAttrs (lib.mod i 3 == 0) { doCheck = true; });
  stdenv = {
    mkDerivation = attrs: let self = attrs // {
      name = "${attrs.pname}-${attrs.version}";
      overrideAttrs = f: stdenv.mkDerivation (attrs // f attrs);
    }; in self;
  };
  scope = lib.makeScope lib.callPackageWith (self: {
    inherit stdenv;
    fetch = name: "/src/${name}.tar.gz";
  } // lib.listToAttrs (builtins.genList (i: lib.nameValuePair "p${toString i}"
    (self.callPackage (mk i) (lib.optionalAttrs (i > 0) { libs = [ self."p${toString (i - 1)}".name ]; }))) n));
  scope2 = scope.overrideScope (final: prev: {
    p10 = prev.p10.override { withDocs = true; };
    p20 = prev.p20.overrideAttrs (old: { version = "9.9"; });
  });
  names = builtins.genList (i: "p${toString i}") n;
in lib.foldl' (a: name: a + builtins.stringLength scope2.${name}.name + builtins.length scope2.${name}.buildInputs
  + (if scope2.${name}.doCheck or false then 1 else 0) + scope2.${name}.meta.position) 0 names
