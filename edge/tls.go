package edge

import (
	"crypto/tls"
	"net"
)

// tlsClient is a client's TLS connection as the outbox holds it. Its Close
// closes the socket at once: crypto/tls would first send a close_notify
// alert, waiting up to 5 s for room in the socket buffer, and the outbox
// closes from the fan-out, a timer wheel or shutdown, which must never
// wait on one client. No client needs the alert: every response the edge
// ends is self-delimiting (the last chunk of an SSE response, a WebSocket
// close frame).
type tlsClient struct{ *tls.Conn }

func (c tlsClient) Close() error { return c.NetConn().Close() }

// outboxConn is the connection an outbox writes to and closes for conn.
func outboxConn(conn net.Conn) net.Conn {
	if tc, ok := conn.(*tls.Conn); ok {
		return tlsClient{tc}
	}
	return conn
}
