package narinfo

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tvix-go/tvix/internal/nixtest"
	"github.com/tvix-go/tvix/nix/nixhash"
	"github.com/tvix-go/tvix/nix/storepath"
)

// A narinfo from cache.nixos.org (curl 7.82.0), with its real signature
// and a second one by the well-known "test1" key; used as a vector by
// nix-compat and go-nix.
var curlNarinfo = readTestdata("curl.narinfo")

const curlFingerprint = "1;/nix/store/syd87l2rxw8cbsxmxl853h0r6pdwhwjr-curl-7.82.0-bin;sha256:1b4sb93wp679q4zx9k1ignby1yna3z7c4c2ri3wphylbc2dwsys0;196040;/nix/store/0jqd0rlxzra1rs38rdxl43yh6rxchgc6-curl-7.82.0,/nix/store/6w8g7njm4mck5dmjxws0z1xnrxvl81xa-glibc-2.34-115,/nix/store/j5jxw3iy7bbz4a57fh9g2xm2gxmyal8h-zlib-1.2.12,/nix/store/yxvjs9drzsphm9pcf42a4byzj1kb9m7k-openssl-1.1.1n"

const (
	cacheNixosOrgPub = "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="
	test1Pub         = "test1:tLAEn+EeaBUJYqEpTd2yeerr7Ic6+0vWe+aXL/vYUpE="
)

// A text-CA narinfo (a .drv) and an uncompressed one with its Sig last.
var drvNarinfo = readTestdata("gnutls-drv.narinfo")

// readTestdata reads a vector from testdata/ (shared with store/pathinfo's
// PathInfo conversion tests).
func readTestdata(name string) string {
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		panic(err)
	}
	return string(b)
}

func mustParse(t testing.TB, s string) *NarInfo {
	t.Helper()
	ni, err := Parse(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	return ni
}

func TestRoundTrip(t *testing.T) {
	for _, s := range []string{curlNarinfo, drvNarinfo} {
		ni := mustParse(t, s)
		if got := ni.String(); got != s {
			t.Errorf("String() differs:\n%s\nwant:\n%s", got, s)
		}
	}
	ni := mustParse(t, curlNarinfo)
	if ni.NarSize != 196040 || len(ni.References) != 4 || ni.Deriver.Name != "curl-7.82.0.drv" ||
		ni.FileSize != 68852 || ni.EffectiveCompression() != "xz" || len(ni.Signatures) != 2 {
		t.Errorf("parsed fields wrong: %+v", ni)
	}
	drv := mustParse(t, drvNarinfo)
	if drv.CA == nil || drv.CA.Method != nixhash.Text {
		t.Errorf("CA = %v", drv.CA)
	}
}

func TestFingerprintAndVerify(t *testing.T) {
	ni := mustParse(t, curlNarinfo)
	if fp := ni.Fingerprint(); fp != curlFingerprint {
		t.Fatalf("fingerprint:\n%s\nwant\n%s", fp, curlFingerprint)
	}
	nixos, err := ParsePublicKey(cacheNixosOrgPub)
	if err != nil {
		t.Fatal(err)
	}
	test1, err := ParsePublicKey(test1Pub)
	if err != nil {
		t.Fatal(err)
	}
	if got := ni.Verify([]PublicKey{nixos, test1}); strings.Join(got, ",") != "cache.nixos.org-1,test1" {
		t.Fatalf("Verify = %v", got)
	}
	drv := mustParse(t, drvNarinfo)
	if got := drv.Verify([]PublicKey{nixos}); len(got) != 1 {
		t.Fatalf("drv narinfo signature not valid: %v", got)
	}
	// Any change to the signed fields breaks the signature.
	ni.NarSize++
	if got := ni.Verify([]PublicKey{nixos, test1}); len(got) != 0 {
		t.Fatalf("Verify after tampering = %v", got)
	}
	ni.NarSize--
	// A key only vouches for signatures carrying its name.
	renamed := ni.Signatures[0]
	renamed.Name = "cache.nixos.org-2"
	if nixos.VerifyFingerprint(ni.Fingerprint(), renamed) {
		t.Error("signature under another key name accepted")
	}
	// Reference order does not change the fingerprint: Nix sorts them.
	ni.References[0], ni.References[3] = ni.References[3], ni.References[0]
	if ni.Fingerprint() != curlFingerprint {
		t.Error("fingerprint depends on reference order")
	}
}

func TestSignRoundTrip(t *testing.T) {
	sk, pk, err := GenerateKey("my-cache-1", bytes.NewReader(bytes.Repeat([]byte{7}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	sk2, err := ParseSecretKey(sk.String())
	if err != nil || !sk2.Key.Equal(sk.Key) {
		t.Fatalf("ParseSecretKey(String()) = %v", err)
	}
	pk2, err := ParsePublicKey(pk.String())
	if err != nil || !pk2.Key.Equal(pk.Key) || sk.Public().String() != pk.String() {
		t.Fatalf("public key round trip: %v", err)
	}
	ni := mustParse(t, curlNarinfo)
	ni.Sign(sk)
	ni.Sign(sk) // replaces, does not duplicate
	if len(ni.Signatures) != 3 {
		t.Fatalf("%d signatures, want 3", len(ni.Signatures))
	}
	if got := ni.Verify([]PublicKey{pk}); len(got) != 1 {
		t.Fatalf("own signature not verified: %v", got)
	}
	again := mustParse(t, ni.String())
	if got := again.Verify([]PublicKey{pk}); len(got) != 1 {
		t.Fatalf("signature lost in printing: %v", got)
	}
}

func TestBadKeys(t *testing.T) {
	sk, _, _ := GenerateKey("k", nil)
	tampered := append(ed25519.PrivateKey(nil), sk.Key...)
	tampered[40] ^= 1
	for _, tc := range []struct{ in, want string }{
		{"", "want <name>:<base64>"},
		{"nocolon", "want <name>:<base64>"},
		{":" + strings.Repeat("A", 88), "want <name>:<base64>"},
		{"k:!!!", "invalid character '!' in base64"},
		{"k:AAAA", "3 bytes, want 64"},
		{SecretKey{Name: "k", Key: tampered}.String(), "public half does not match"},
	} {
		if _, err := ParseSecretKey(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseSecretKey(%q) = %v, want %q", tc.in, err, tc.want)
		}
	}
	if _, err := ParsePublicKey("k:AAAA"); err == nil || !strings.Contains(err.Error(), "3 bytes, want 32") {
		t.Errorf("ParsePublicKey short: %v", err)
	}
	// Names with white space can never be trusted (Nix splits
	// trusted-public-keys at it), so they are refused everywhere.
	_, pk, _ := GenerateKey("k", nil)
	for _, name := range []string{"my key", "k\t1", "a\vb"} {
		if _, err := ParsePublicKey(name + ":" + strings.SplitN(pk.String(), ":", 2)[1]); err == nil || !strings.Contains(err.Error(), "white space") {
			t.Errorf("public key named %q: %v", name, err)
		}
		if _, _, err := GenerateKey(name, nil); err == nil {
			t.Errorf("GenerateKey(%q) accepted", name)
		}
		if _, err := ParseSignature(name + ":" + strings.Repeat("A", 86) + "=="); err == nil || !strings.Contains(err.Error(), "white space") {
			t.Errorf("signature by %q: %v", name, err)
		}
	}
}

// Public keys and signatures decode as Nix 2.8 decodes them: without
// padding too.
func TestKeysWithoutPadding(t *testing.T) {
	sk, pk, _ := GenerateKey("k-1", nil)
	unpadded := strings.TrimRight(pk.String(), "=")
	got, err := ParsePublicKey(unpadded)
	if err != nil || got.String() != pk.String() {
		t.Fatalf("public key without padding %q: %v, %v", unpadded, got, err)
	}
	sig := sk.SignFingerprint("fingerprint")
	s, err := ParseSignature(strings.TrimRight(sig.String(), "="))
	if err != nil || string(s.Data) != string(sig.Data) {
		t.Fatalf("signature without padding: %v", err)
	}
}

func TestMalformed(t *testing.T) {
	replace := func(old, new string) string {
		if !strings.Contains(curlNarinfo, old) {
			t.Fatalf("%q not in the sample", old)
		}
		return strings.Replace(curlNarinfo, old, new, 1)
	}
	drop := func(key string) string {
		var out []string
		for _, l := range strings.Split(curlNarinfo, "\n") {
			if !strings.HasPrefix(l, key+":") {
				out = append(out, l)
			}
		}
		return strings.Join(out, "\n")
	}
	for _, tc := range []struct{ name, in, want string }{
		{"missing StorePath", drop("StorePath"), "missing StorePath"},
		{"missing URL", drop("URL"), "missing URL"},
		{"missing NarHash", drop("NarHash"), "missing NarHash"},
		{"missing NarSize", drop("NarSize"), "missing NarSize"},
		{"relative StorePath", replace("StorePath: /nix/store/", "StorePath: "), "not in /nix/store"},
		{"bad NarHash", replace("NarHash: sha256:1b4s", "NarHash: sha256:xb4s"), "NarHash"},
		{"md5 NarHash", replace("NarHash: sha256:1b4sb93wp679q4zx9k1ignby1yna3z7c4c2ri3wphylbc2dwsys0", "NarHash: md5:3jgzhjhz9zjvbb0kyj7jc500ch"), "want sha256"},
		{"NarSize not a number", replace("NarSize: 196040", "NarSize: 19x"), `NarSize "19x": not a number`},
		{"NarSize zero", replace("NarSize: 196040", "NarSize: 0"), "NarSize is 0"},
		{"FileSize negative", replace("FileSize: 68852", "FileSize: -1"), "FileSize"},
		{"duplicate key", replace("URL:", "URL: x\nURL:"), "duplicate URL"},
		{"bad reference", replace("0jqd0rlxzra1rs38rdxl43yh6rxchgc6-curl", "0jqd0rlxzra1rs38rdxl43yh6rxchgc-curl"), "References"},
		{"deriver not .drv", replace("curl-7.82.0.drv", "curl-7.82.0"), "does not end in .drv"},
		{"short signature", replace("TsTTb3WGTZKphvYdBHXwo6weVILmTytUjLB+vcX89fOjjRicCHmKA4RCPMVLkj6TMJ4GMX3HPVWRdD1hkeKZBQ==", "AAAA"), "3 bytes, want 64"},
		{"unnamed signature", replace("Sig: cache.nixos.org-1:", "Sig: :"), "want <key name>:<base64>"},
		{"bad CA", curlNarinfo + "CA: fixed:sha3:abc\n", "CA:"},
		{"line without colon", curlNarinfo + "garbage\n", "not a Key: value line"},
		{"empty", "", "missing StorePath"},
		{"huge line", "URL: " + strings.Repeat("x", 2<<20) + "\n", "token too long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to mention %q", err, tc.want)
			}
		})
	}
	// Unknown keys are tolerated, as by Nix.
	if _, err := Parse(strings.NewReader(curlNarinfo + "Future: thing\n")); err != nil {
		t.Errorf("unknown key refused: %v", err)
	}
}

// TestKeysAgainstNix: keys from nix-store --generate-binary-cache-key work
// here, keys made here work in Nix, and since ed25519 signatures are
// deterministic both sides must produce identical signature bytes.
func TestKeysAgainstNix(t *testing.T) {
	nixtest.Require(t)
	path := nixtest.BuildInputAddressed(t, fmt.Sprintf("keys-%d", time.Now().UnixNano()))
	dir := t.TempDir()

	nixSK, nixPK := filepath.Join(dir, "nix.sec"), filepath.Join(dir, "nix.pub")
	nixtest.Run(t, "nix-store", "--generate-binary-cache-key", "nix-made-1", nixSK, nixPK)
	ourSK, ourPK, err := GenerateKey("go-made-1", bytes.NewReader(bytes.Repeat([]byte{42}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	ourSKFile := filepath.Join(dir, "go.sec")
	if err := os.WriteFile(ourSKFile, []byte(ourSK.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	readKey := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	sk, err := ParseSecretKey(readKey(nixSK))
	if err != nil {
		t.Fatal(err)
	}
	pk, err := ParsePublicKey(readKey(nixPK))
	if err != nil || sk.Public().String() != pk.String() {
		t.Fatalf("nix key pair: public %v (%v), derived %v", pk, err, sk.Public())
	}

	nixtest.Run(t, "nix", "store", "sign", "--key-file", nixSK, path)
	nixtest.Run(t, "nix", "store", "sign", "--key-file", ourSKFile, path)
	nixtest.Run(t, "nix", "store", "verify", "--sigs-needed", "1", "--trusted-public-keys", ourPK.String(), path)

	var infos []struct {
		Path       string   `json:"path"`
		NarHash    string   `json:"narHash"`
		NarSize    uint64   `json:"narSize"`
		References []string `json:"references"`
		Signatures []string `json:"signatures"`
	}
	if err := json.Unmarshal(nixtest.Run(t, "nix", "path-info", "--json", path), &infos); err != nil || len(infos) != 1 {
		t.Fatalf("nix path-info: %v", err)
	}
	info := infos[0]
	sp, err := storepath.Parse(info.Path)
	if err != nil {
		t.Fatal(err)
	}
	narHash, err := nixhash.Parse(info.NarHash)
	if err != nil {
		t.Fatal(err)
	}
	var refs []storepath.StorePath
	for _, r := range info.References {
		p, err := storepath.Parse(r)
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, p)
	}
	fp := Fingerprint(sp, narHash, info.NarSize, refs)
	for _, k := range []SecretKey{sk, ourSK} {
		want := k.SignFingerprint(fp).String()
		found := false
		for _, s := range info.Signatures {
			found = found || s == want
		}
		if !found {
			t.Errorf("key %s: our signature %s not among Nix's %v", k.Name, want, info.Signatures)
		}
	}
	for _, s := range info.Signatures {
		sig, err := ParseSignature(s)
		if err != nil {
			t.Fatal(err)
		}
		if sig.Name == pk.Name && !pk.VerifyFingerprint(fp, sig) {
			t.Errorf("Nix's signature %s does not verify here", s)
		}
	}
	// And a key Nix does not trust must not satisfy it.
	other, _, _ := GenerateKey("go-made-1", bytes.NewReader(bytes.Repeat([]byte{43}, 32)))
	if _, err := nixtest.RunErr("nix", "store", "verify", "--sigs-needed", "1", "--trusted-public-keys", other.Public().String(), path); err == nil {
		t.Error("nix store verify accepted a signature by an untrusted key")
	}
}

func FuzzParse(f *testing.F) {
	f.Add(curlNarinfo)
	f.Add(drvNarinfo)
	f.Add("StorePath: /nix/store/00000000000000000000000000000000-x\nURL: u\nNarHash: sha256:" + strings.Repeat("0", 52) + "\nNarSize: 1\nReferences: \n")
	f.Fuzz(func(t *testing.T, s string) {
		ni, err := Parse(strings.NewReader(s))
		if err != nil {
			return
		}
		again, err := Parse(strings.NewReader(ni.String()))
		if err != nil {
			t.Fatalf("printed narinfo does not parse: %v\n%s", err, ni.String())
		}
		if again.String() != ni.String() || again.Fingerprint() != ni.Fingerprint() {
			t.Fatalf("print/parse not stable:\n%s\n%s", ni.String(), again.String())
		}
	})
}
