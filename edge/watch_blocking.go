package edge

import "net"

// watchCloseBlocking is watchClose where epoll is not built in, or for a
// connection without a socket of its own. A goroutine parked in Read
// notices the client leaving; it costs its stack per idle client.
func watchCloseBlocking(conn net.Conn, left func()) {
	go func() {
		// Owner: the SSE session. Exits when the client leaves or the
		// outbox closes the socket.
		buf := make([]byte, 64)
		for {
			if _, err := conn.Read(buf); err != nil {
				break
			}
		}
		left()
	}()
}

// serveInputBlocking is serveInput for a connection epoll cannot watch (a
// TLS connection, whose records only crypto/tls can read, or any where
// epoll is not built in): it hands consume a blocking read, so one call
// lasts the whole connection.
func serveInputBlocking(conn net.Conn, consume func(read func([]byte) (int, error)) bool) {
	go func() {
		// Owner: the WebSocket session. Exits when the socket fails or
		// the outbox closes it.
		for consume(conn.Read) {
		}
	}()
}
