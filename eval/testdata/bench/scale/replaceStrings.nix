# replaceStrings over a long string with several patterns, as escaping does
{ n ? 100000 }:
let s = builtins.concatStringsSep "" (builtins.genList (i: "a<b>&'c\" ") n);
in builtins.stringLength (builtins.replaceStrings [ "<" ">" "&" "'" "\"" ] [ "&lt;" "&gt;" "&amp;" "&apos;" "&quot;" ] s)
