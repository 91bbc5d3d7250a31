package scaletest

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/tvix-go/tvix/internal/testenv"
)

// Host is a network namespace made for a test: a machine of its own with
// a loopback and one veth link to the test's namespace. The servers of
// scripts/services listen on the test's loopback only; Reach forwards a
// port of the host side of the link to them, so a daemon in the namespace
// reaches them at HostIP.
type Host struct {
	NS     string // for ip netns exec
	HostIP string // the test's side of the link
	IP     string // the namespace's side
}

var subnet struct {
	once sync.Once
	base int
	next int
	mu   sync.Mutex
}

// nsPrefix and the test process's pid start the name of each namespace,
// so that one left by a process that died before its cleanup (a go test
// timeout kills without running it) is known and removed by the next.
const nsPrefix = "tvix-test-"

// removeOrphans deletes the namespaces of test processes no longer
// running (their veth pairs go with them), whose addresses would
// otherwise shadow this process's.
func removeOrphans() {
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), nsPrefix)
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 0 || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		exec.Command("ip", "netns", "del", e.Name()).Run()
	}
}

// NewHost makes a namespace, removed when the test ends.
func NewHost(t testing.TB) *Host {
	t.Helper()
	testenv.Root(t, "network namespaces")
	testenv.Tool(t, "ip", "iproute2")
	subnet.once.Do(func() {
		subnet.base = 100 + rand.IntN(100)
		removeOrphans()
	})
	subnet.mu.Lock()
	n := subnet.next
	subnet.next++
	subnet.mu.Unlock()
	tag := fmt.Sprintf("%04x%02x", rand.IntN(1<<16), n)
	h := &Host{
		NS:     fmt.Sprintf("%s%d-%s", nsPrefix, os.Getpid(), tag),
		HostIP: fmt.Sprintf("10.%d.%d.1", subnet.base, n),
		IP:     fmt.Sprintf("10.%d.%d.2", subnet.base, n),
	}
	outer, inner := "tvx"+tag+"h", "tvx"+tag+"n"
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", h.NS)
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", outer).Run()
		exec.Command("ip", "netns", "del", h.NS).Run()
	})
	ip("link", "add", outer, "type", "veth", "peer", "name", inner)
	ip("link", "set", inner, "netns", h.NS)
	ip("addr", "add", h.HostIP+"/24", "dev", outer)
	ip("link", "set", outer, "up")
	ip("-n", h.NS, "addr", "add", h.IP+"/24", "dev", inner)
	ip("-n", h.NS, "link", "set", inner, "up")
	ip("-n", h.NS, "link", "set", "lo", "up")
	return h
}

// Command runs name in the namespace.
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
}

// Reach forwards HostIP:port to 127.0.0.1:port until the test ends.
// Cut closes the forwarder's connections (a network failure seen from
// the namespace) while it keeps accepting new ones.
func (h *Host) Reach(t testing.TB, port string) *Forwarder {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(h.HostIP, port))
	if err != nil {
		t.Fatalf("forward %s:%s: %v", h.HostIP, port, err)
	}
	f := &Forwarder{l: l, to: net.JoinHostPort("127.0.0.1", port), conns: map[net.Conn]bool{}}
	go f.serve()
	t.Cleanup(f.close)
	return f
}

// Forwarder is a TCP relay into the test's loopback.
type Forwarder struct {
	l     net.Listener
	to    string
	mu    sync.Mutex
	conns map[net.Conn]bool
}

func (f *Forwarder) serve() {
	for {
		c, err := f.l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		go f.relay(c)
	}
}

func (f *Forwarder) relay(c net.Conn) {
	up, err := net.Dial("tcp", f.to)
	if err != nil {
		c.Close()
		return
	}
	f.mu.Lock()
	f.conns[c], f.conns[up] = true, true
	f.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	f.mu.Lock()
	delete(f.conns, c)
	delete(f.conns, up)
	f.mu.Unlock()
}

// Cut closes every relayed connection.
func (f *Forwarder) Cut() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		c.Close()
	}
}

func (f *Forwarder) close() {
	f.l.Close()
	f.Cut()
}
