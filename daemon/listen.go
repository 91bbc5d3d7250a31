package daemon

import (
	"fmt"
	"net"
	"net/url"
	"os"
)

// listen binds unix:///path.sock or tcp://host:port.
func listen(addr string) (net.Listener, error) {
	u, err := url.Parse(addr)
	if err != nil {
		return nil, fmt.Errorf("listen %q: %w", addr, err)
	}
	switch u.Scheme {
	case "unix":
		if u.Path == "" {
			return nil, fmt.Errorf("listen %q: want unix:///absolute/path.sock", addr)
		}
		// A socket left by a daemon that died is in the way; a live one is not ours to take.
		if conn, err := net.Dial("unix", u.Path); err == nil {
			conn.Close()
			return nil, fmt.Errorf("listen %q: another process is serving on this socket", addr)
		}
		os.Remove(u.Path)
		return net.Listen("unix", u.Path)
	case "tcp":
		return net.Listen("tcp", u.Host)
	}
	return nil, fmt.Errorf("listen %q: want unix:///path.sock or tcp://host:port", addr)
}
