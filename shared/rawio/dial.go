package rawio

import (
	"context"
	"net"
	"time"
)

// Dialer dials like a net.Dialer with the given timeout (zero means 5 s)
// and TCP keep-alives, and wraps what it dials.
type Dialer struct {
	Timeout time.Duration
}

// DialContext dials address on network and wraps the connection; its
// signature is go-redis's Options.Dialer.
func (d Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	timeout := d.Timeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	c, err := (&net.Dialer{Timeout: timeout, KeepAlive: 5 * time.Minute}).DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	return Wrap(c), nil
}

// Dial is DialContext without a context: nats.go's CustomDialer.
func (d Dialer) Dial(network, address string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, address)
}
