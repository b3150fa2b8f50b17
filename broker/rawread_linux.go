//go:build linux

package broker

import (
	"context"
	"io"
	"net"
	"syscall"
	"time"
	"unsafe"
)

// RawReadDialer dials Redis like go-redis's own dialer (plain TCP or Unix
// socket) and returns connections whose reads skip the runtime's syscall
// bookkeeping. The broker's subscription is read once per batch of
// messages; on an otherwise idle process each ordinary read syscall wakes
// the runtime's monitor thread, which then polls every 20 µs for the next
// millisecond: with events spread out in time, that costs more CPU than the
// read itself. The socket is non-blocking, so the raw read never waits:
// the descriptor's poller still does the waiting, with deadlines. A zero
// timeout means go-redis's default, 5 s.
func RawReadDialer(timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	d := &net.Dialer{Timeout: timeout, KeepAlive: 5 * time.Minute}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		sc, ok := c.(syscall.Conn)
		if !ok {
			return c, nil
		}
		raw, err := sc.SyscallConn()
		if err != nil {
			return c, nil
		}
		return &rawReadConn{Conn: c, raw: raw}, nil
	}
}

type rawReadConn struct {
	net.Conn
	raw syscall.RawConn
}

func (c *rawReadConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var (
		n     int
		errno syscall.Errno
	)
	err := c.raw.Read(func(fd uintptr) bool {
		for {
			r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			switch e {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false // wait in the poller, then call again
			}
			n, errno = int(r), e
			return true
		}
	})
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, &net.OpError{Op: "read", Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: errno}
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}
