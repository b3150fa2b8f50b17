package edge

import (
	"crypto/tls"
	"net"
	"sync"
)

// tlsClient is a client's TLS connection as the outbox holds it.
//
// Its Close closes the socket at once: crypto/tls would first send a
// close_notify alert, waiting up to 5 s for room in the socket buffer, and
// the outbox closes from the fan-out, a timer wheel or shutdown, which
// must never wait on one client. No client needs the alert: every response
// the edge ends is self-delimiting (the last chunk of an SSE response, a
// WebSocket close frame).
//
// Writes are gathered until Flush, which the outbox calls after each round:
// a frame in parts (head, shared payload, tail) and a round of several
// frames then cost one TLS record each rather than one per part. The buffer
// goes back to a pool after every flush, so an idle client holds none.
type tlsClient struct {
	*tls.Conn
	pool *sync.Pool // the edge's gathering buffers (*[]byte)
	buf  *[]byte    // gathered writes; nil between rounds
}

func (c *tlsClient) Close() error { return c.NetConn().Close() }

// Write gathers p for the next Flush.
func (c *tlsClient) Write(p []byte) (int, error) {
	if c.buf == nil {
		if b, ok := c.pool.Get().(*[]byte); ok {
			c.buf = b
		} else {
			b := make([]byte, 0, 16<<10)
			c.buf = &b
		}
	}
	*c.buf = append(*c.buf, p...)
	return len(p), nil
}

// Flush encrypts and writes what was gathered.
func (c *tlsClient) Flush() error {
	if c.buf == nil {
		return nil
	}
	_, err := c.Conn.Write(*c.buf)
	if cap(*c.buf) <= 64<<10 {
		*c.buf = (*c.buf)[:0]
		c.pool.Put(c.buf)
	}
	c.buf = nil
	return err
}

// outboxConn is the connection an outbox writes to and closes for conn.
func (e *Edge) outboxConn(conn net.Conn) net.Conn {
	if tc, ok := conn.(*tls.Conn); ok {
		return &tlsClient{Conn: tc, pool: &e.tlsBuffers}
	}
	return conn
}
