package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tvix-go/tvix/internal/nixtest"
	"github.com/tvix-go/tvix/internal/testenv"
)

// nixDaemon is a tvix daemon serving Nix's daemon protocol, its store
// mounted where Nix clients read store paths (?root=).
type nixDaemon struct {
	dir, sock, root string
	proc            *tvixProc
}

// uri is the store URI Nix clients use.
func (d *nixDaemon) uri() string { return "unix://" + d.sock + "?root=" + d.root }

func startNixDaemon(t *testing.T, extra ...string) *nixDaemon {
	t.Helper()
	testenv.FUSE(t)
	// Socket paths are short: the temp dir of a test is too long.
	dir, err := os.MkdirTemp("", "tvix-nixd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755) // other users reach the socket (as its group allows)
	d := &nixDaemon{dir: dir, sock: filepath.Join(dir, "nix.sock"), root: filepath.Join(dir, "root")}
	mount := filepath.Join(d.root, "nix", "store")
	if err := os.MkdirAll(mount, 0o755); err != nil {
		t.Fatal(err)
	}
	unmountAtEnd(t, mount)
	args := append([]string{"daemon", "--nix-daemon-listen", "unix://" + d.sock, "--mount", mount,
		"--gc-roots", filepath.Join(dir, "gcroots")}, extra...)
	d.proc = startTvix(t, []string{"XDG_DATA_HOME=" + filepath.Join(dir, "data")}, args...)
	d.proc.waitFor(t, d.sock)
	for deadline := time.Now().Add(20 * time.Second); !isMounted(mount); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the store was not mounted:\n%s", d.proc.log.String())
		}
	}
	return d
}

// nixIn runs a Nix command against the daemon, failing with its output.
func (d *nixDaemon) nix(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := nixtest.RunErr(name, append([]string{"--store", d.uri()}, args...)...)
	if err != nil {
		t.Fatalf("%s --store tvix %v: %v\ntvix log:\n%s", name, args, err, d.proc.log.String())
	}
	return strings.TrimSpace(string(out))
}

type nixPathInfo struct {
	Path       string   `json:"path"`
	NarHash    string   `json:"narHash"`
	NarSize    uint64   `json:"narSize"`
	References []string `json:"references"`
	Signatures []string `json:"signatures"`
	CA         string   `json:"ca"`
}

func pathInfoJSON(t *testing.T, out string) nixPathInfo {
	t.Helper()
	var infos []nixPathInfo
	if err := json.Unmarshal([]byte(out), &infos); err != nil || len(infos) != 1 {
		t.Fatalf("path-info output %q: %v", out, err)
	}
	return infos[0]
}

// TestNixClientsUseTvixAsTheirStore: Nix 2.8's own commands against the
// tvix daemon's socket give what they give against a Nix store.
func TestNixClientsUseTvixAsTheirStore(t *testing.T) {
	nixtest.Require(t)
	testenv.Tool(t, "bwrap", "bubblewrap")
	testenv.Root(t, "builds in a sandbox and mounts")
	d := startNixDaemon(t)
	nonce := fmt.Sprint(time.Now().UnixNano())

	// Sources: the store path nix-store --add computes.
	src := filepath.Join(t.TempDir(), "greeting")
	os.WriteFile(src, []byte("hello "+nonce+"\n"), 0o644)
	added := d.nix(t, "nix-store", "--add", src)
	if want := nixtest.Text(t, "nix-store", "--add", src); added != want {
		t.Fatalf("nix-store --add through tvix: %s, Nix: %s", added, want)
	}

	// nix copy --to: an input-addressed path Nix built, with its
	// references, keeps its NAR hash, and reads back.
	built := nixtest.BuildInputAddressed(t, nonce)
	local := pathInfoJSON(t, nixtest.Text(t, "nix", "path-info", "--json", built))
	// As with Nix's daemon, an unsigned path needs --no-check-sigs even
	// from a trusted user.
	if out, err := nixtest.RunErr("nix", "copy", "--to", d.uri(), built); err == nil || !strings.Contains(err.Error(), "lacks a signature by a trusted key") {
		t.Fatalf("nix copy --to of an unsigned path: %v %s", err, out)
	}
	nixtest.Run(t, "nix", "copy", "--no-check-sigs", "--to", d.uri(), built)
	remote := pathInfoJSON(t, d.nix(t, "nix", "path-info", "--json", built))
	if remote.NarHash != local.NarHash || remote.NarSize != local.NarSize {
		t.Fatalf("after nix copy --to: %+v, Nix's %+v", remote, local)
	}
	if got := d.nix(t, "nix", "store", "cat", built+"/data"); got != nonce {
		t.Fatalf("nix store cat: %q", got)
	}
	if got, want := d.nix(t, "nix-store", "-q", "--references", built), nixtest.Text(t, "nix-store", "-q", "--references", built); got != want {
		t.Fatalf("references %q, Nix's %q", got, want)
	}

	// nix-instantiate writes the derivations into tvix; nix-build builds
	// them with tvix's sandbox, giving nix-build's outputs.
	f := buildCorpus(t, nonce)
	results := map[string]string{}
	for _, attr := range []string{"chain", "multi", "flat", "recursive", "uses"} {
		drv := d.nix(t, "nix-instantiate", f, "-A", attr)
		if want := nixtest.Text(t, "nix-instantiate", f, "-A", attr); drv != want {
			t.Fatalf("%s: nix-instantiate through tvix wrote %s, Nix %s", attr, drv, want)
		}
		nixOut, err := nixtest.Sandboxed("nix-store", "--realise", drv)
		if err != nil {
			t.Fatalf("nix-store --realise: %v", err)
		}
		link := filepath.Join(d.dir, "result-"+attr)
		out := d.nix(t, "nix-build", f, "-A", attr, "-o", link)
		nixBuilt, err := nixtest.Sandboxed("nix-build", "--no-out-link", f, "-A", attr)
		if err != nil {
			t.Fatalf("nix-build: %v", err)
		}
		results[attr] = out
		if out != nixBuilt {
			t.Fatalf("%s: nix-build through tvix gave %q, Nix %q", attr, out, nixBuilt)
		}
		for _, p := range strings.Fields(nixOut) {
			if got, want := d.nix(t, "nix-store", "-q", "--hash", p), nixtest.Text(t, "nix-store", "-q", "--hash", p); got != want {
				t.Errorf("%s: NAR hash %s, Nix's %s", p, got, want)
			}
			if got, want := d.nix(t, "nix-store", "-q", "--requisites", p), nixtest.Text(t, "nix-store", "-q", "--requisites", p); got != want {
				t.Errorf("%s: requisites %q, Nix's %q", p, got, want)
			}
		}
	}
	// The builds were tvix's, and nix-store -r of a valid path is a no-op.
	if !strings.Contains(d.proc.log.String(), "mounted store") {
		t.Fatalf("no build sandbox was mounted:\n%s", d.proc.log.String())
	}
	d.nix(t, "nix-store", "-r", built)

	// nix copy --from into a fresh Nix store.
	client := filepath.Join(t.TempDir(), "client")
	uses := strings.TrimSpace(nixtest.Text(t, "nix-store", "-q", "--outputs", nixtest.Text(t, "nix-instantiate", f, "-A", "uses")))
	nixtest.Run(t, "nix", "copy", "--no-check-sigs", "--from", d.uri(), "--to", client, uses)
	got := pathInfoJSON(t, nixtest.Text(t, "nix", "path-info", "--store", client, "--json", uses))
	if want := pathInfoJSON(t, nixtest.Text(t, "nix", "path-info", "--json", uses)); got.NarHash != want.NarHash {
		t.Fatalf("nix copy --from tvix: %+v, Nix's %+v", got, want)
	}

	// Verification, and the roots nix-build added.
	d.nix(t, "nix-store", "--verify", "--check-contents")
	roots := d.nix(t, "nix-store", "--gc", "--print-roots")
	if !strings.Contains(roots, filepath.Join(d.dir, "result-uses")) {
		t.Fatalf("--print-roots does not list nix-build's result:\n%s", roots)
	}
	// A rooted path cannot be deleted; once its root is gone, the
	// collector takes it and keeps what other roots hold.
	if out, err := nixtest.RunErr("nix-store", "--store", d.uri(), "--delete", uses); err == nil {
		t.Fatalf("nix-store --delete of a rooted path succeeded: %s", out)
	}
	os.Remove(filepath.Join(d.dir, "result-uses"))
	dead := d.nix(t, "nix-store", "--gc", "--print-dead")
	if !strings.Contains(dead, uses) || strings.Contains(dead, results["multi"]) || strings.Contains(dead, results["chain"]) {
		t.Fatalf("--print-dead:\n%s", dead)
	}
	d.nix(t, "nix-store", "--gc")
	if out, err := nixtest.RunErr("nix-store", "--store", d.uri(), "-q", "--hash", uses); err == nil {
		t.Fatalf("%s is still valid after gc: %s", uses, out)
	}
	// What the other results hold stays, whole.
	for _, p := range strings.Fields(d.nix(t, "nix-store", "-q", "--requisites", results["multi"], results["chain"])) {
		d.nix(t, "nix-store", "-q", "--hash", p)
	}
	d.nix(t, "nix-store", "--verify", "--check-contents")
}

// TestTvixAsNixRemoteBuilder: a Nix machine with the tvix daemon as its
// only builder (-j0) gets the corpus and GNU hello built by tvix: the
// outputs land in its store with the daemon's signature, and Nix's own
// rebuild (--check) finds them identical.
func TestTvixAsNixRemoteBuilder(t *testing.T) {
	nixtest.Require(t)
	testenv.Tool(t, "bwrap", "bubblewrap")
	testenv.Root(t, "builds in a sandbox and mounts")
	key := filepath.Join(t.TempDir(), "tvix.sk")
	sk := nixtest.Text(t, "nix", "key", "generate-secret", "--key-name", "tvix-builder-1")
	os.WriteFile(key, []byte(sk), 0o600)
	d := startNixDaemon(t, "--nix-signing-key-file", key, "--build-jobs", "2")
	builders := d.uri() + " x86_64-linux - 2"
	f := buildCorpus(t, fmt.Sprint(time.Now().UnixNano()))
	for _, attr := range []string{"uses", "multi", "recursive"} {
		drv := nixtest.Text(t, "nix-instantiate", f, "-A", attr)
		out, err := nixtest.RunErr("nix-build", "--no-out-link", "-j0", "--builders", builders, drv)
		if err != nil {
			t.Fatalf("%s: nix-build with tvix as builder: %v\ntvix log:\n%s", attr, err, d.proc.log.String())
		}
		for _, p := range strings.Fields(string(out)) {
			info := pathInfoJSON(t, nixtest.Text(t, "nix", "path-info", "--json", "--sigs", p))
			if attr != "recursive" && !slices.ContainsFunc(info.Signatures, func(s string) bool { return strings.HasPrefix(s, "tvix-builder-1:") }) {
				t.Errorf("%s has no signature by the tvix builder: %v", p, info.Signatures)
			}
		}
		if _, err := nixtest.Sandboxed("nix-store", "--realise", "--check", drv); err != nil {
			t.Fatalf("%s: Nix's rebuild differs from tvix's: %v", attr, err)
		}
	}
	if !strings.Contains(d.proc.log.String(), "mounted store") {
		t.Fatalf("tvix built nothing:\n%s", d.proc.log.String())
	}

	if _, err := os.Stat(filepath.Join(helloSource, ".complete")); err != nil {
		testenv.Missing(t, "GNU hello's source and toolchain not prepared (scripts/hello-source/prepare): %v", err)
	}
	hello, err := nixtest.Sandboxed("nix-build", "--no-out-link", helloSource)
	if err != nil {
		t.Fatalf("nix-build hello: %v", err)
	}
	want := nixtest.Text(t, "nix-store", "-q", "--hash", hello)
	if out, err := exec.Command("nix-store", "--delete", hello).CombinedOutput(); err != nil {
		t.Fatalf("nix-store --delete %s: %v\n%s", hello, err, out)
	}
	start := time.Now()
	out, err := nixtest.RunErr("nix-build", "--no-out-link", "-j0", "--builders", builders, helloSource)
	if err != nil {
		t.Fatalf("hello with tvix as builder: %v\ntvix log:\n%s", err, d.proc.log.String())
	}
	t.Logf("GNU hello built by tvix for Nix in %s", time.Since(start).Round(time.Second))
	if strings.TrimSpace(string(out)) != hello {
		t.Fatalf("remote hello %q, Nix's %q", out, hello)
	}
	if got := nixtest.Text(t, "nix-store", "-q", "--hash", hello); got != want {
		t.Fatalf("hello built by tvix: NAR hash %s, Nix's %s", got, want)
	}
}

// sshd runs an OpenSSH server on a loopback port that lets root in with
// a key of its own; it returns the port and the client key.
func sshd(t *testing.T) (port int, key string) {
	t.Helper()
	bin := testenv.Tool(t, "/usr/sbin/sshd", "openssh-server")
	testenv.Tool(t, "ssh", "openssh-client")
	dir := t.TempDir()
	host, key := filepath.Join(dir, "host"), filepath.Join(dir, "client")
	for _, k := range []string{host, key} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", k).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	auth := filepath.Join(dir, "authorized_keys")
	os.WriteFile(auth, pub, 0o600)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port = lis.Addr().(*net.TCPAddr).Port
	lis.Close()
	conf := filepath.Join(dir, "sshd_config")
	os.WriteFile(conf, []byte(fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
AuthorizedKeysFile %s
PermitRootLogin prohibit-password
PasswordAuthentication no
StrictModes no
UsePAM no
PidFile %s
`, port, host, auth, filepath.Join(dir, "sshd.pid"))), 0o600)
	os.MkdirAll("/run/sshd", 0o755)
	cmd := exec.Command(bin, "-D", "-e", "-f", conf)
	var log syncBuffer
	cmd.Stderr = &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("sshd log:\n%s", log.String())
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", lis.Addr().String()); err == nil {
			c.Close()
			return port, key
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd did not listen:\n%s", log.String())
		}
	}
}

// TestNixOverSSHNG: Nix reaches tvix over ssh-ng:// with `tvix
// nix-daemon` as remote-program (serving stdio against a running
// daemon's store): path-info, copies both ways (NARs over the protocol,
// not the filesystem) and a remote build.
func TestNixOverSSHNG(t *testing.T) {
	nixtest.Require(t)
	testenv.Tool(t, "bwrap", "bubblewrap")
	testenv.Root(t, "builds in a sandbox and mounts")
	port, key := sshd(t)
	grpcSock := filepath.Join(t.TempDir(), "grpc.sock")
	d := startNixDaemon(t, "--listen", "unix://"+grpcSock)
	d.proc.waitFor(t, grpcSock)
	program := tvixBinary(t) + " nix-daemon --store unix://" + grpcSock
	store := fmt.Sprintf("ssh-ng://root@127.0.0.1?ssh-key=%s&remote-program=%s", key, strings.ReplaceAll(program, " ", "%20"))
	env := append(nixtest.Env(), fmt.Sprintf("NIX_SSHOPTS=-p %d -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR", port))
	nixSSH := func(args ...string) (string, error) {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	nonce := fmt.Sprint(time.Now().UnixNano())
	built := nixtest.BuildInputAddressed(t, nonce)
	if out, err := nixSSH("nix", "copy", "--no-check-sigs", "--to", store, built); err != nil {
		t.Fatalf("nix copy --to ssh-ng: %v\n%s\ntvix log:\n%s", err, out, d.proc.log.String())
	}
	out, err := nixSSH("nix", "path-info", "--json", "--store", store, built)
	if err != nil {
		t.Fatalf("nix path-info over ssh-ng: %v\n%s", err, out)
	}
	if got, want := pathInfoJSON(t, out), pathInfoJSON(t, nixtest.Text(t, "nix", "path-info", "--json", built)); got.NarHash != want.NarHash {
		t.Fatalf("over ssh-ng: %+v, Nix's %+v", got, want)
	}
	client := filepath.Join(t.TempDir(), "client")
	if out, err := nixSSH("nix", "copy", "--no-check-sigs", "--from", store, "--to", client, built); err != nil {
		t.Fatalf("nix copy --from ssh-ng: %v\n%s", err, out)
	}
	if got := nixtest.Text(t, "nix", "store", "cat", "--store", client, built+"/data"); got != nonce {
		t.Fatalf("copied back over ssh-ng: %q", got)
	}
	f := buildCorpus(t, nonce)
	drv := nixtest.Text(t, "nix-instantiate", f, "-A", "uses")
	if out, err := nixSSH("nix-build", "--no-out-link", "-j0", "--builders", store+" x86_64-linux - 1", drv); err != nil {
		t.Fatalf("nix-build with tvix over ssh-ng as builder: %v\n%s\ntvix log:\n%s", err, out, d.proc.log.String())
	}
	if _, err := nixtest.Sandboxed("nix-store", "--realise", "--check", drv); err != nil {
		t.Fatalf("Nix's rebuild differs from tvix's: %v", err)
	}
}

// procFDs and procRSS read a process's open descriptors and resident
// memory (kB).
func procFDs(t *testing.T, pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func procRSS(t *testing.T, pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

// TestNixDaemonUnderLoad: 16 Nix clients at once query, add and copy for
// a minute (TVIX_NIX_DAEMON_LOAD sets another duration): no client sees
// an error, and the daemon ends with the descriptors it started with.
func TestNixDaemonUnderLoad(t *testing.T) {
	nixtest.Require(t)
	testenv.Root(t, "mounts")
	d := startNixDaemon(t)
	duration := time.Minute
	if s := os.Getenv("TVIX_NIX_DAEMON_LOAD"); s != "" {
		var err error
		if duration, err = time.ParseDuration(s); err != nil {
			t.Fatal(err)
		}
	}
	nonce := fmt.Sprint(time.Now().UnixNano())
	built := nixtest.BuildInputAddressed(t, nonce)
	nixtest.Run(t, "nix", "copy", "--no-check-sigs", "--to", d.uri(), built)
	pid := d.proc.cmd.Process.Pid
	fdsBefore, rssBefore := procFDs(t, pid), procRSS(t, pid)
	var (
		mu     sync.Mutex
		ops    = map[string]int{}
		errs   []string
		wg     sync.WaitGroup
		finish = time.Now().Add(duration)
	)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dir := t.TempDir()
			for n := 0; time.Now().Before(finish); n++ {
				var args []string
				var what string
				switch n % 4 {
				case 0:
					what, args = "path-info", []string{"nix", "path-info", "--store", d.uri(), "--json", "-r", built}
				case 1:
					f := filepath.Join(dir, fmt.Sprintf("f%d", n))
					os.WriteFile(f, []byte(fmt.Sprintf("client %d file %d %s", i, n, nonce)), 0o644)
					what, args = "add", []string{"nix-store", "--store", d.uri(), "--add", f}
				case 2:
					what, args = "copy --to", []string{"nix", "copy", "--no-check-sigs", "--to", d.uri(), built}
				case 3:
					what, args = "copy --from", []string{"nix", "copy", "--no-check-sigs", "--from", d.uri(), "--to", filepath.Join(dir, fmt.Sprintf("s%d", n)), built}
				}
				out, err := nixtest.RunErr(args[0], args[1:]...)
				mu.Lock()
				ops[what]++
				if err != nil {
					errs = append(errs, fmt.Sprintf("%s: %v %s", what, err, out))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d of the clients' commands failed, first: %s\ntvix log:\n%s", len(errs), errs[0], d.proc.log.String())
	}
	// Connections close as their clients exit; give the last ones a moment.
	var fdsAfter int
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if fdsAfter = procFDs(t, pid); fdsAfter <= fdsBefore+2 || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("%v in %s; daemon fds %d -> %d, RSS %d -> %d kB", ops, duration, fdsBefore, fdsAfter, rssBefore, procRSS(t, pid))
	if fdsAfter > fdsBefore+2 {
		t.Fatalf("the daemon holds %d descriptors after the load, %d before", fdsAfter, fdsBefore)
	}
	d.nix(t, "nix-store", "--verify", "--check-contents")
}

// TestUntrustedNixClient: a Nix client running as nobody, not in
// trusted-users, adds content-addressed paths and paths signed by a
// trusted key, but not an unsigned input-addressed one, even asking not
// to check signatures.
func TestUntrustedNixClient(t *testing.T) {
	nixtest.Require(t)
	testenv.Root(t, "runs a client as another user")
	setpriv := testenv.Tool(t, "setpriv", "util-linux")
	dir, err := os.MkdirTemp("", "tvix-untrusted-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o777)
	sk := filepath.Join(dir, "sk")
	os.WriteFile(sk, []byte(nixtest.Text(t, "nix", "key", "generate-secret", "--key-name", "uploader-1")), 0o600)
	pk, err := nixtest.RunInput(mustRead(t, sk), "nix", "key", "convert-secret-to-public")
	if err != nil {
		t.Fatal(err)
	}
	d := startNixDaemon(t, "--socket-group", "65534", "--trusted-public-keys", strings.TrimSpace(string(pk)))
	nonce := fmt.Sprint(time.Now().UnixNano())
	signed := nixtest.BuildInputAddressed(t, nonce+"-signed")
	unsigned := nixtest.BuildInputAddressed(t, nonce+"-unsigned")
	nixtest.Run(t, "nix", "store", "sign", "--key-file", sk, signed)
	cache := "file://" + filepath.Join(dir, "cache")
	nixtest.Run(t, "nix", "copy", "--to", cache, signed, unsigned)
	exec.Command("chmod", "-R", "a+rwX", dir).Run()
	asNobody := func(args ...string) (string, error) {
		cmd := exec.Command(setpriv, append([]string{"--reuid=65534", "--regid=65534", "--clear-groups"}, args...)...)
		cmd.Env = append(nixtest.Env(), "HOME="+dir, "XDG_CACHE_HOME="+filepath.Join(dir, "cache-home"),
			"NIX_CONFIG="+nixtest.Config+"\nrequire-sigs = false")
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	own := filepath.Join(dir, "own")
	if out, err := asNobody("nix", "copy", "--from", cache, "--to", own, signed, unsigned); err != nil {
		t.Fatalf("nobody's own store: %v\n%s", err, out)
	}
	if out, err := asNobody("nix", "copy", "--no-check-sigs", "--from", own, "--to", d.uri(), unsigned); err == nil || !strings.Contains(out, "lacks a signature by a trusted key") {
		t.Fatalf("an untrusted client added an unsigned input-addressed path: %v\n%s", err, out)
	}
	if out, err := asNobody("nix", "copy", "--from", own, "--to", d.uri(), signed); err != nil {
		t.Fatalf("a path signed by a trusted key from an untrusted client: %v\n%s\ntvix log:\n%s", err, out, d.proc.log.String())
	}
	f := filepath.Join(dir, "src")
	os.WriteFile(f, []byte(nonce), 0o644)
	if out, err := asNobody("nix-store", "--store", d.uri(), "--add", f); err != nil || !strings.HasPrefix(out, "/nix/store/") {
		t.Fatalf("nix-store --add from an untrusted client: %v\n%s", err, out)
	}
	if out, err := asNobody("nix", "path-info", "--store", d.uri(), signed); err != nil || out != signed {
		t.Fatalf("path-info from an untrusted client: %v\n%s", err, out)
	}
	if out, err := exec.Command("nix-store", "--store", d.uri(), "-q", "--hash", unsigned).CombinedOutput(); err == nil {
		t.Fatalf("the refused path is valid: %s", out)
	}
}

func mustRead(t *testing.T, f string) []byte {
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestNixRealiseSubstitutes: nix-store -r of a path the daemon lacks
// substitutes it from the daemon's binary cache, whole.
func TestNixRealiseSubstitutes(t *testing.T) {
	nixtest.Require(t)
	testenv.Root(t, "mounts")
	built := nixtest.BuildInputAddressed(t, fmt.Sprint(time.Now().UnixNano()))
	cache := filepath.Join(t.TempDir(), "cache")
	nixtest.Run(t, "nix", "copy", "--to", "file://"+cache, built)
	d := startNixDaemon(t, "--substituters", "nix+file://"+cache, "--allow-unsigned-substitutes")
	if out, err := nixtest.RunErr("nix-store", "--store", d.uri(), "-q", "--hash", built); err == nil {
		t.Fatalf("%s valid before substitution: %s", built, out)
	}
	// Asking what would be fetched fetches nothing (Nix's QueryMissing and
	// substitutable path infos, from the narinfo alone).
	dry, err := nixtest.Command("nix-store", "--store", d.uri(), "-r", "--dry-run", built).CombinedOutput()
	if err != nil || !strings.Contains(string(dry), "will be fetched") || !strings.Contains(string(dry), built) {
		t.Fatalf("nix-store -r --dry-run: %v\n%s", err, dry)
	}
	if out, err := nixtest.RunErr("nix-store", "--store", d.uri(), "-q", "--hash", built); err == nil {
		t.Fatalf("%s valid after a dry run: %s", built, out)
	}
	if got := d.nix(t, "nix-store", "-r", built); got != built {
		t.Fatalf("nix-store -r printed %q", got)
	}
	if got, want := d.nix(t, "nix-store", "-q", "--hash", built), nixtest.Text(t, "nix-store", "-q", "--hash", built); got != want {
		t.Fatalf("substituted %s: NAR hash %s, Nix's %s", built, got, want)
	}
	if got := d.nix(t, "nix", "store", "cat", built+"/data"); got == "" {
		t.Fatalf("substituted path reads empty through the mount")
	}
}

// The client's build settings bound builds as Nix's own daemon does:
// max-silent-time and timeout end a build as timed out, a build that
// logs outlives max-silent-time, and without keep-going the first failure
// stops the build running beside it (with it, that one finishes).
func TestNixClientBuildLimits(t *testing.T) {
	nixtest.Require(t)
	testenv.Root(t, "mounts")
	d := startNixDaemon(t, "--build-jobs", "2")
	dir := t.TempDir()
	copyBusybox(t, dir)
	f := filepath.Join(dir, "limits.nix")
	os.WriteFile(f, []byte(fmt.Sprintf(`
let
  busybox = ./busybox;
  sh = name: script: derivation {
    inherit name; system = builtins.currentSystem; nonce = %q;
    builder = "${busybox}/bin/busybox";
    args = [ "sh" "-c" ("export PATH=${busybox}/bin; " + script) ];
  };
in {
  silent = sh "silent" "sleep 60; echo > $out";
  chatty = sh "chatty" "for i in 1 2 3 4 5 6; do echo tick $i; sleep 1; done; echo > $out";
  fails = sh "fails" "echo failing; exit 1";
  slow = sh "slow" "sleep 10; echo > $out";
  slow2 = sh "slow2" "sleep 10; echo > $out";
}`, fmt.Sprint(time.Now().UnixNano()))), 0o644)
	build := func(args ...string) (string, error) {
		out, err := nixtest.RunErr("nix-build", append([]string{"--store", d.uri(), "--no-out-link", f}, args...)...)
		return string(out), err
	}
	started := time.Now()
	out, err := build("-A", "silent", "--option", "max-silent-time", "2")
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("a silent build under max-silent-time 2: %v\n%s", err, out)
	}
	if took := time.Since(started); took > 30*time.Second {
		t.Fatalf("the silent build was stopped after %s, not about 2 s", took)
	}
	// Runs 6 s, longer than the limit, logging every second.
	if out, err := build("-A", "chatty", "--option", "max-silent-time", "5"); err != nil {
		t.Fatalf("a build logging each second under max-silent-time 5: %v\n%s", err, out)
	}
	if out, err := build("-A", "silent", "--timeout", "2"); err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("a build past --timeout 2: %v\n%s", err, out)
	}
	valid := func(attr string) bool {
		drv := d.nix(t, "nix-instantiate", f, "-A", attr)
		outPath := d.nix(t, "nix-store", "-q", "--outputs", drv)
		_, err := nixtest.RunErr("nix-store", "--store", d.uri(), "-q", "--hash", outPath)
		return err == nil
	}
	if _, err := build("-A", "fails", "-A", "slow"); err == nil {
		t.Fatal("a build with a failing derivation succeeded")
	}
	if valid("slow") {
		t.Fatalf("without keep-going, the build beside the failed one still finished\n%s", d.proc.log.String())
	}
	if _, err := build("-A", "fails", "-A", "slow2", "--keep-going"); err == nil {
		t.Fatal("a build with a failing derivation succeeded")
	}
	if !valid("slow2") {
		t.Fatal("with keep-going, the build beside the failed one did not finish")
	}
}
