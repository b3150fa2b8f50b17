//go:build !linux || spillway_portable

package edge

import (
	"context"
	"log/slog"
	"net"
)

// idleWithoutGoroutine reports whether an idle client costs no goroutine:
// each watched connection has a goroutine parked in read.
const idleWithoutGoroutine = false

// watcher, where epoll is not available, is a goroutine per connection
// parked in read(2).
type watcher struct{}

func newWatcher(*slog.Logger) (*watcher, error) { return &watcher{}, nil }

func (w *watcher) watchClose(conn net.Conn, left func()) (forget func(), ok bool) {
	watchCloseBlocking(conn, left)
	return func() {}, true
}

func (w *watcher) serveInput(conn net.Conn, consume func(read func([]byte) (int, error)) bool, stop func()) (forget func(), ok bool) {
	serveInputBlocking(conn, consume)
	return func() {}, true
}

func (w *watcher) run(ctx context.Context) { <-ctx.Done() }
