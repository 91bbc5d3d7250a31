package nixdaemon

import (
	"net"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// peerOf reads the credentials of a unix socket's peer; other connections
// have an unknown peer.
func peerOf(c net.Conn) Peer {
	p := Peer{UID: -1, GID: -1}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return p
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return p
	}
	raw.Control(func(fd uintptr) {
		cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if err == nil {
			p.UID, p.GID, p.PID = int(cred.Uid), int(cred.Gid), int(cred.Pid)
		}
	})
	return p
}

// watchHangup cancels when the client hangs up, so a long build or
// substitution it no longer waits for stops (as Nix's MonitorFdHup). It
// polls for the peer's shutdown without reading, so requests are left for
// the connection's reader.
func watchHangup(c net.Conn, cancel func()) (stop func()) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return func() {}
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return func() {}
	}
	done := make(chan struct{})
	var once sync.Once
	go func() {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			hup := false
			raw.Control(func(fd uintptr) {
				fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
				if n, err := unix.Poll(fds, 0); err == nil && n > 0 && fds[0].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR) != 0 {
					hup = true
				}
			})
			if hup {
				cancel()
				return
			}
		}
	}()
	return func() { once.Do(func() { close(done) }) }
}

// Users is a list in the form of Nix's trusted-users and allowed-users:
// user names, "@group" for a group's members, "*" for everyone; numeric
// ids are accepted for users without a name.
type Users []string

// Match says whether the peer is in the list.
func (u Users) Match(p Peer) bool {
	if p.UID < 0 {
		return false
	}
	name := strconv.Itoa(p.UID)
	var groups []string
	if usr, err := user.LookupId(name); err == nil {
		name = usr.Username
		groups, _ = usr.GroupIds()
	}
	if p.GID >= 0 {
		groups = append(groups, strconv.Itoa(p.GID))
	}
	for _, e := range u {
		switch {
		case e == "*", e == name, e == strconv.Itoa(p.UID):
			return true
		case strings.HasPrefix(e, "@"):
			want := e[1:]
			if g, err := user.LookupGroup(want); err == nil {
				want = g.Gid
			}
			for _, gid := range groups {
				if gid == want {
					return true
				}
			}
		}
	}
	return false
}
