package daemon

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/internal/testenv"
	"github.com/tvix-go/tvix/store/importer"
	"github.com/tvix-go/tvix/store/registry"
)

func TestLocalDefault(t *testing.T) {
	for in, want := range map[string]string{
		":9000":                "tcp://127.0.0.1:9000",
		"tcp://:9000":          "tcp://127.0.0.1:9000",
		"0.0.0.0:9000":         "0.0.0.0:9000",
		"tcp://[::]:9000":      "tcp://[::]:9000",
		"unix:///run/x.sock":   "unix:///run/x.sock",
		"tcp://localhost:9000": "tcp://localhost:9000",
	} {
		got, err := LocalDefault(in)
		if err != nil || got != want {
			t.Errorf("LocalDefault(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// A daemon given only a port binds loopback, refuses uploads unless told,
// and refuses anonymous uploads on an address other machines can reach.
func TestSafeHTTPDefaults(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d, err := Start(ctx, Config{Store: memoryStore, HTTP: HTTPConfig{Listen: ":0"}, GRPC: []string{"tcp://:0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { d.Stop(); d.Wait() }()
	for _, server := range []string{"http", "grpc"} {
		a := d.Addrs(server)[0].(*net.TCPAddr)
		if !a.IP.IsLoopback() {
			t.Errorf("%s listener without a host bound %s, want loopback", server, a)
		}
	}
	req, _ := http.NewRequest("PUT", "http://"+d.Addrs("http")[0].String()+"/nar/"+strings.Repeat("0", 52)+".nar", strings.NewReader("x"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("PUT to a daemon not told to accept uploads: %d, want 403", resp.StatusCode)
	}

	for _, addr := range []string{"0.0.0.0:0", "tcp://[::]:0"} {
		d2, err := Start(ctx, Config{Store: memoryStore, HTTP: HTTPConfig{Listen: addr, AllowAnonymousUploads: true}})
		if err == nil {
			d2.Stop()
			d2.Wait()
			t.Fatalf("anonymous uploads on %s were allowed", addr)
		}
		if !strings.Contains(err.Error(), "--http-allow-anonymous-uploads") {
			t.Errorf("refusal of anonymous uploads on %s does not name the flag: %v", addr, err)
		}
	}
	sock := filepath.Join(t.TempDir(), "bridge.sock")
	d3, err := Start(ctx, Config{Store: memoryStore, HTTP: HTTPConfig{Listen: "unix://" + sock, AllowAnonymousUploads: true}})
	if err != nil {
		t.Fatalf("anonymous uploads on a unix socket: %v", err)
	}
	d3.Stop()
	d3.Wait()

	if _, err := Start(ctx, Config{Store: memoryStore, HTTP: HTTPConfig{Listen: ":0", UploadAuthFile: filepath.Join(t.TempDir(), "missing")}}); err == nil || !strings.Contains(err.Error(), "--http-upload-auth-file") {
		t.Fatalf("missing upload auth file: %v", err)
	}
}

// Unix sockets are 0660 and belong to the configured group.
func TestSocketGroup(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sock := filepath.Join(t.TempDir(), "tvix.sock")
	const gid = 4242
	testenv.Root(t, "only root may give a socket to a group it is not in")
	d, err := Start(ctx, Config{Store: memoryStore, GRPC: []string{"unix://" + sock}, SocketGroup: "4242"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { d.Stop(); d.Wait() }()
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 || fi.Sys().(*syscall.Stat_t).Gid != gid {
		t.Fatalf("socket mode %v gid %d, want 0660 gid %d", fi.Mode().Perm(), fi.Sys().(*syscall.Stat_t).Gid, gid)
	}
	if _, err := Start(ctx, Config{Store: memoryStore, GRPC: []string{"unix://" + sock + "2"}, SocketGroup: "no-such-group-here"}); err == nil || !strings.Contains(err.Error(), "no-such-group-here") {
		t.Fatalf("unknown socket group: %v", err)
	}
}

// A store substituting from another tvix (gRPC) copies a path's contents
// before recording it, so the path stays readable when the upstream goes.
func TestGRPCSubstitutionCopiesContents(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sock := filepath.Join(t.TempDir(), "up.sock")
	up, err := Start(ctx, Config{Store: memoryStore, GRPC: []string{"unix://" + sock}})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			up.Stop()
			up.Wait()
		}
	}()
	im := importer.Store{Blobs: up.Services.Blobs, Dirs: up.Services.Directories, PathInfo: up.Services.PathInfos}
	content := []byte(strings.Repeat("only upstream has this ", 1000))
	sp, _, err := im.AddText(ctx, "upstream-only", content, nil)
	if err != nil {
		t.Fatal(err)
	}
	down, err := registry.Default().Open(ctx, memoryStore, registry.Substitution{}, "grpc+unix://"+sock)
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	info, err := down.PathInfos.Get(ctx, sp.Digest)
	if err != nil {
		t.Fatalf("substitute %s: %v", sp, err)
	}
	up.Stop()
	up.Wait()
	stopped = true
	d, err := castore.DigestFromBytes(info.GetNode().GetFile().GetDigest())
	if err != nil {
		t.Fatal(err)
	}
	r, err := down.Blobs.Open(ctx, d)
	if err != nil {
		t.Fatalf("contents of a substituted path after the upstream went: %v", err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || string(got) != string(content) {
		t.Fatalf("contents of a substituted path after the upstream went: %v", err)
	}
}
