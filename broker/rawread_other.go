//go:build !linux

package broker

import (
	"context"
	"net"
	"time"
)

// RawReadDialer dials Redis like go-redis's own dialer; raw reads are a
// Linux refinement, elsewhere connections are plain.
func RawReadDialer(timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	d := &net.Dialer{Timeout: timeout, KeepAlive: 5 * time.Minute}
	return d.DialContext
}
