# string escaping and case: escapeXML, escapeURL-like replaceStrings, toUpper/toLower,
# sanitizeDerivationName, escapeRegex, over 10,000 strings
{ lib }:
let
  n = 10000;
  ss = builtins.genList (i: "Name <${toString i}> & \"q\" 'x' path/to file #${toString i}") n;
  xml = map lib.escapeXML ss;
  up = map lib.toUpper ss;
  san = map lib.strings.sanitizeDerivationName (lib.take 3000 ss);
  re = map lib.escapeRegex (lib.take 3000 ss);
in lib.foldl' (a: s: a + builtins.stringLength s) 0 (xml ++ up ++ san ++ re)
