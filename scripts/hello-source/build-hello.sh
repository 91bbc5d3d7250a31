export PATH=$tools/bin:$tools/usr/bin
export CONFIG_SHELL=$tools/bin/sh SHELL=$tools/bin/sh
$tools/bin/tar xzf $src
cd hello-2.10
# Scripts name /bin/sh, which a sandbox lacks (nixpkgs' patchShebangs).
find . -type f -perm -u+x | while read f; do
  sed -i "1s|^#! */bin/sh|#!$tools/bin/sh|" "$f"
done
# busybox sh runs its own applets before PATH: binutils by full path.
sh ./configure --prefix=$out CC=$tools/bin/cc AR=$tools/usr/bin/ar RANLIB=$tools/usr/bin/ranlib
make SHELL=$SHELL -j$NIX_BUILD_CORES
make SHELL=$SHELL install
