package pathinfo_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/internal/nixtest"
	"github.com/tvix-go/tvix/nix/nar"
	"github.com/tvix-go/tvix/nix/narinfo"
	"github.com/tvix-go/tvix/nix/nixhash"
	"github.com/tvix-go/tvix/store/pathinfo"
)

// TestBinaryCacheAgainstNix: a narinfo and NAR written by `nix copy` parse
// here and print back byte for byte; and a binary cache written here (our
// narinfo, our signature) is accepted by `nix store verify`, which also
// downloads the NAR and checks its hash.
func TestBinaryCacheAgainstNix(t *testing.T) {
	nixtest.Require(t)
	path := nixtest.BuildInputAddressed(t, fmt.Sprintf("nonce-%d", time.Now().UnixNano()))
	dir := t.TempDir()
	ours, ourPub, err := narinfo.GenerateKey("tvix-go-test-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "key.sec")
	if err := os.WriteFile(keyFile, []byte(ours.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	nixtest.Run(t, "nix", "store", "sign", "--key-file", keyFile, path)
	nixCache := filepath.Join(dir, "nix-cache")
	nixtest.Run(t, "nix", "copy", "--to", "file://"+nixCache+"?compression=none", path)

	hashPart := filepath.Base(path)[:32]
	raw, err := os.ReadFile(filepath.Join(nixCache, hashPart+".narinfo"))
	if err != nil {
		t.Fatal(err)
	}
	ni, err := narinfo.Parse(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if ni.String() != string(raw) {
		t.Fatalf("Nix's narinfo does not round-trip:\n%s\nours:\n%s", raw, ni.String())
	}
	if got := ni.Verify([]narinfo.PublicKey{ourPub}); len(got) != 1 {
		t.Fatalf("our signature, carried by Nix, does not verify: %v", got)
	}
	narBytes, err := os.ReadFile(filepath.Join(nixCache, ni.URL))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(narBytes)
	if !bytes.Equal(sum[:], ni.NarHash.Digest) || uint64(len(narBytes)) != ni.NarSize ||
		ni.FileHash == nil || !ni.FileHash.Equal(ni.NarHash) || ni.FileSize != ni.NarSize {
		t.Fatalf("NAR file does not match the narinfo")
	}
	r := nar.NewReader(bytes.NewReader(narBytes))
	for {
		if _, err := r.Next(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("Nix's NAR: %v", err)
		}
	}

	// Our cache: narinfo rebuilt through a PathInfo (as nar-bridge serves
	// it), signed by a key of ours only.
	// The root node does not matter for the narinfo; any valid one will do.
	root := &castorev1.Node{Node: &castorev1.Node_File{File: &castorev1.FileNode{Digest: castore.EmptyBlobDigest.Bytes()}}}
	info, err := pathinfo.FromNarInfo(ni, root)
	if err != nil {
		t.Fatal(err)
	}
	ourCache := filepath.Join(dir, "our-cache")
	if err := os.MkdirAll(filepath.Join(ourCache, "nar"), 0o755); err != nil {
		t.Fatal(err)
	}
	back, err := pathinfo.ToNarInfo(info)
	if err != nil {
		t.Fatal(err)
	}
	back.Signatures = nil
	back.URL = "nar/" + nixhash.Hash{Algo: nixhash.SHA256, Digest: sum[:]}.Nix32() + ".nar"
	back.Compression = "none"
	signer, signerPub, _ := narinfo.GenerateKey("tvix-go-cache-1", nil)
	back.Sign(signer)
	files := map[string][]byte{
		"nix-cache-info":             []byte("StoreDir: /nix/store\n"),
		hashPart + ".narinfo":        []byte(back.String()),
		filepath.FromSlash(back.URL): narBytes,
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(ourCache, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	store := "file://" + ourCache
	nixtest.Run(t, "nix", "store", "verify", "--store", store, "--sigs-needed", "1", "--trusted-public-keys", signerPub.String(), path)
	if _, err := nixtest.RunErr("nix", "store", "verify", "--store", store, "--sigs-needed", "1", "--trusted-public-keys", ourPub.String(), path); err == nil {
		t.Fatal("nix store verify accepted our cache with a key that did not sign it")
	}
	// A NAR that does not match the narinfo is caught by Nix too, so the
	// verify above really checked the contents.
	bad := bytes.Clone(narBytes)
	bad[len(bad)-20] ^= 1
	if err := os.WriteFile(filepath.Join(ourCache, filepath.FromSlash(back.URL)), bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := nixtest.RunErr("nix", "store", "verify", "--store", store, "--sigs-needed", "1", "--trusted-public-keys", signerPub.String(), path); err == nil {
		t.Fatal("nix store verify accepted a corrupted NAR")
	}
}
