//go:build !linux

package edge

import (
	"context"
	"log/slog"
	"net"
)

// closeWatch, where epoll is not available, is a goroutine per connection
// parked in read(2).
type closeWatch struct{}

func newCloseWatch(*slog.Logger) (*closeWatch, error) { return &closeWatch{}, nil }

func (w *closeWatch) watch(conn net.Conn, left func()) (forget func(), ok bool) {
	go func() {
		// Owner: the SSE session. Exits when the client leaves or the
		// socket is closed.
		buf := make([]byte, 64)
		for {
			if _, err := conn.Read(buf); err != nil {
				break
			}
		}
		left()
	}()
	return func() {}, true
}

func (w *closeWatch) run(ctx context.Context) { <-ctx.Done() }
