# GNU hello 2.10 from Debian's source, built with a toolchain made of
# Debian's gcc, binutils, make and libc packages, patched into a store
# path as nixpkgs' bootstrap tools are.
{ tree ? ./tree, src ? ./hello-2.10.tar.gz }:
let
  system = builtins.currentSystem;
  sh = "${tree}/bin/busybox";
  tools = derivation {
    name = "debian-bootstrap-tools"; inherit system;
    builder = sh;
    args = [ "sh" "-e" ./unpack-tools.sh ];
    inherit tree;
  };
in derivation {
  name = "hello-2.10"; inherit system;
  builder = "${tools}/bin/sh";
  args = [ "-e" ./build-hello.sh ];
  inherit tools src;
}
