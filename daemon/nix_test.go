package daemon

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tvix-go/tvix/internal/nixtest"
	"github.com/tvix-go/tvix/nix/narinfo"
	"github.com/tvix-go/tvix/store/registry"
)

// The daemon's nar-bridge with C++ Nix: an input-addressed path built by
// nix-build and uploaded signed by its uploader is substituted back by
// `nix-store -r` with Nix's cache kept (so from the URL it uploaded to);
// a client with a fresh cache trusting only the daemon's --signing-key-file
// gets it too, and one trusting neither does not.
func TestDaemonNixSubstituter(t *testing.T) {
	nixtest.Require(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keys := func(name string) (narinfo.SecretKey, narinfo.PublicKey) {
		sk, pk, err := narinfo.GenerateKey(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		return sk, pk
	}
	daemonSK, daemonPK := keys("daemon-1")
	uploaderSK, uploaderPK := keys("uploader-1")
	_, strangerPK := keys("stranger-1")
	db := "bbolt://" + filepath.Join(dir, "db.bolt")
	d, err := Start(ctx, Config{
		Store: registry.Addrs{Blob: "pack+file://" + filepath.Join(dir, "packs"), Directory: db, PathInfo: db},
		HTTP: HTTPConfig{Listen: "127.0.0.1:0", AllowAnonymousUploads: true,
			SigningKeyFile: write("daemon.sk", daemonSK.String())},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { d.Stop(); d.Wait() }()
	url := "http://" + d.Addrs("http")[0].String()

	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	p := nixtest.BuildInputAddressed(t, t.Name())
	nixtest.Run(t, "nix", "copy", "--to", url+"?compression=xz&secret-key="+write("uploader.sk", uploaderSK.String()), p)

	realise := func(root string, trusted narinfo.PublicKey) error {
		_, err := nixtest.RunErr("nix-store", "--store", "local?root="+root, "-r", p,
			"--option", "substituters", url, "--option", "trusted-public-keys", trusted.String())
		return err
	}
	root := t.TempDir()
	if err := realise(root, uploaderPK); err != nil {
		t.Fatalf("nix-store -r with the uploader's cache kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, p, "data")); err != nil {
		t.Fatalf("substituted path incomplete: %v", err)
	}

	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	if err := realise(t.TempDir(), strangerPK); err == nil {
		t.Fatal("nix-store -r trusted a path signed by neither trusted key")
	}
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	root = t.TempDir()
	if err := realise(root, daemonPK); err != nil {
		t.Fatalf("nix-store -r trusting only the daemon's key: %v", err)
	}
	got := nixtest.Text(t, "nix", "path-info", "--store", "local?root="+root, "--sigs", p)
	if !strings.Contains(got, "daemon-1:") {
		t.Fatalf("the substituted path lacks the daemon's signature: %s", got)
	}
}
