# list library functions: imap, flatten, unique (quadratic in Nix too, so kept small),
# sublist, zipLists, range, foldr, any/all, as option merging and package lists use them
{ lib }:
let
  n = 50000;
  xs = lib.range 0 (n - 1);
  nested = map (i: [ i [ (i + 1) [ (i + 2) ] ] ]) (lib.sublist 0 10000 xs);
  flat = lib.flatten nested;
  uniq = lib.unique (map (i: lib.mod i 500) (lib.take 5000 xs));
  zipped = lib.zipListsWith (a: b: a * b) xs (lib.reverseList xs);
  sum = lib.foldr (a: b: a + b) 0 (lib.imap0 (i: x: i + x) (lib.take 20000 xs));
in [ (builtins.length flat) (builtins.length uniq) (lib.last zipped) sum (lib.any (x: x == n - 1) xs) (lib.all (x: x >= 0) xs) ]
