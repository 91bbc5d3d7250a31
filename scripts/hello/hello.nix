# GNU hello as a two-path Nix closure built from what Debian ships (no
# network): a "libc" path with the dynamic loader and libc, and hello
# itself, patched to load them from the store.
let
  system = builtins.currentSystem;
  libc = derivation {
    name = "debian-libc";
    inherit system;
    builder = "/bin/sh";
    PATH = "/usr/bin:/bin";
    args = [ "-c" ''
      mkdir -p $out/lib
      cp -L /lib/x86_64-linux-gnu/libc.so.6 /lib64/ld-linux-x86-64.so.2 $out/lib/
      chmod 0555 $out/lib/*
    '' ];
  };
in
derivation {
  name = "hello";
  inherit system;
  builder = "/bin/sh";
  PATH = "/usr/bin:/bin";
  inherit libc;
  args = [ "-c" ''
    mkdir -p $out/bin
    cp /usr/bin/hello $out/bin/hello
    chmod u+w $out/bin/hello
    patchelf --set-interpreter $libc/lib/ld-linux-x86-64.so.2 --set-rpath $libc/lib $out/bin/hello
    chmod 0555 $out/bin/hello
  '' ];
}
