package eval

// corepkgsPrefix is where <nix/...> files live, as in Nix 2.8.
const corepkgsPrefix = "/__corepkgs__/"

// corepkgs are the Nix files Nix ships inside the binary (<nix/fetchurl.nix>).
var corepkgs = map[string]string{
	"fetchurl.nix": `{ system ? "", url, hash ? "", sha256 ? "", sha1 ? "", md5 ? "", outputHash ? "",
  outputHashAlgo ? "", sha512 ? "", name ? baseNameOf (toString url), executable ? false, unpack ? false, urls ? [ ] }:
derivation ({
  builder = "builtin:fetchurl";
  system = "builtin";
  outputHashMode = if unpack || executable then "recursive" else "flat";
  inherit name url executable unpack;
  urls = if urls == [ ] then [ url ] else urls;
  preferLocalBuild = true;
  impureEnvVars = [ "http_proxy" "https_proxy" "ftp_proxy" "all_proxy" "no_proxy" ];
  outputHashAlgo = if hash != "" then "" else if sha512 != "" then "sha512" else if sha1 != "" then "sha1" else if md5 != "" then "md5" else "sha256";
  outputHash = if hash != "" then hash else if sha512 != "" then sha512 else if sha1 != "" then sha1 else if md5 != "" then md5 else sha256;
})
`,
}
