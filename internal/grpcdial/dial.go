// Package grpcdial turns grpc+unix:// and grpc+http(s):// service addresses
// into client connections, shared by the castore and store clients.
package grpcdial

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/url"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// MaxMessageSize allows directories with many entries; blob data is sent
// in 1 MiB messages anyway.
const MaxMessageSize = 64 << 20

// Dial creates a lazily connecting client for u.
func Dial(_ context.Context, u *url.URL) (*grpc.ClientConn, error) {
	var target string
	creds := insecure.NewCredentials()
	switch u.Scheme {
	case "grpc+unix":
		if u.Host != "" || u.Path == "" {
			return nil, fmt.Errorf("grpc+unix address needs an absolute socket path (grpc+unix:///path/to.sock)")
		}
		target = "unix://" + u.Path
	case "grpc+http":
		target = "dns:///" + u.Host
	case "grpc+https":
		target = "dns:///" + u.Host
		creds = credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})
	default:
		return nil, fmt.Errorf("not a gRPC address scheme: %q", u.Scheme)
	}
	if u.Host == "" && u.Scheme != "grpc+unix" {
		return nil, fmt.Errorf("%s address needs host:port", u.Scheme)
	}
	return grpc.NewClient(target,
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageSize), grpc.MaxCallSendMsgSize(MaxMessageSize)))
}
