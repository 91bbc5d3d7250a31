# Copies the extracted packages to $out and makes them run from there:
# every executable gets $out's dynamic loader and library path, absolute
# symlinks point into $out, and cc wraps gcc with $out as its sysroot.
bb=$tree/bin/busybox
$bb mkdir -p $out
$bb cp -a $tree/. $out/
$bb chmod -R u+w $out
for a in $($bb --list); do [ -e $out/bin/$a ] || $bb ln -s busybox $out/bin/$a; done
export PATH=$out/bin
find $out -type l | while read l; do
  t=$(readlink "$l")
  case "$t" in /*) rm "$l"; ln -s "$out$t" "$l";; esac
done
ld=$out/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
libs=$out/lib/x86_64-linux-gnu:$out/usr/lib/x86_64-linux-gnu
# patchelf runs from copies, so that patching never changes a running
# binary or a library it has mapped.
mkdir $TMPDIR/pe
cp $out/usr/bin/patchelf $ld $TMPDIR/pe/
for l in libc.so.6 libm.so.6 libgcc_s.so.1; do cp $out/lib/x86_64-linux-gnu/$l $TMPDIR/pe/; done
cp $out/usr/lib/x86_64-linux-gnu/libstdc++.so.6 $TMPDIR/pe/
patchelf() { $TMPDIR/pe/ld-linux-x86-64.so.2 --library-path $TMPDIR/pe $TMPDIR/pe/patchelf "$@"; }
find $out -type f ! -name '*.so' ! -name '*.so.*' | while read f; do
  [ "$(head -c 4 "$f" | od -An -c | tr -d ' ')" = '177ELF' ] || continue
  if patchelf --print-interpreter "$f" >/dev/null 2>&1; then
    patchelf --set-interpreter $ld --force-rpath --set-rpath $libs "$f"
  fi
done
cat > $out/bin/cc <<CC
#!$out/bin/sh
exec $out/usr/bin/gcc-12 --sysroot=$out -Wl,--dynamic-linker=$ld -Wl,-rpath,$libs "\$@"
CC
chmod +x $out/bin/cc
