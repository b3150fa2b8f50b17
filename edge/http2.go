package edge

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spillway/spillway/edge/store"
)

// Over TLS the edge speaks HTTP/2 as well as HTTP/1.1, so that a browser's
// EventSources share one connection instead of queueing behind HTTP/1.1's
// six per host. An HTTP/2 connection carries many streams and cannot be
// taken over, so an SSE stream is a transport of its own (serveSSEStream);
// WebSocket stays on HTTP/1.1 (the edge does not offer RFC 8441), which
// browsers then use for it.

// serveSSEStream serves an SSE stream over HTTP/2. The session is the same
// as over HTTP/1.1 (the same frames, heartbeats, kill and shutdown); its
// outbox writes through the ResponseWriter, with the chunk framing of the
// shared frames stripped, and the handler goroutine stays parked for the
// stream's life, since HTTP/2 ends a stream when its handler returns. The
// response headers are what net/http sends for those set here (lower-case,
// in its order, with date; no transfer-encoding or connection fields).
func (e *Edge) serveSSEStream(w http.ResponseWriter, r *http.Request, rq *streamRequest, adm admission, id store.Identity, res *resolved) {
	h := w.Header()
	h["Content-Type"] = []string{"text/event-stream"}
	h["Cache-Control"] = []string{"private, no-store"}
	c := newStreamConn(w, r)
	s := &sseSession{session: e.newSession(rq.id, id, transportSSE)}
	if !e.open(s.session, adm, c, s) {
		c.exit()
		e.refuseSSE(w, rq, errDraining)
		return
	}
	if _, err := s.subscribe(res); err != nil {
		e.logger.Error("sse subscribe", "err", err)
		s.out.abort(reasonServerError)
	}
	w.WriteHeader(http.StatusOK)
	s.start(sseOpen)
	select {
	case <-r.Context().Done():
		// The stream was reset: by the client, by the connection
		// ending, or by net/http for a write past its deadline. A write
		// round in progress fails and closes the outbox (as slow, for a
		// missed deadline); otherwise the client has left.
		if c.round.Load() == 0 {
			s.out.end()
		}
		<-c.done
	case <-c.done:
	}
	if !c.exit() {
		// Cut short (a slow client, a failed write): reset the stream,
		// as closing the socket does over HTTP/1.1, so that the client
		// does not take it for a complete response.
		panic(http.ErrAbortHandler)
	}
}

// streamConn is an HTTP/2 stream as a session's outbox sees it: a
// connection whose writes go through the ResponseWriter, their chunk
// framing stripped, and that ends when its handler, parked meanwhile,
// returns.
type streamConn struct {
	w      http.ResponseWriter
	rc     *http.ResponseController
	ctx    context.Context // the request's: done once the stream is reset
	local  net.Addr
	remote streamAddr
	done   chan struct{} // closed by Close
	once   sync.Once

	// mu is held by every use of w on the outbox's behalf and by exit:
	// once the handler has returned, net/http panics on any use of w.
	mu   sync.Mutex
	gone bool // exit ran: w is off limits
	dec  dechunker
	// round is the deadline of the write round in progress (Unix ns), 0
	// between rounds. The handler reads it without mu, which a blocked
	// write holds.
	round atomic.Int64
}

func newStreamConn(w http.ResponseWriter, r *http.Request) *streamConn {
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	return &streamConn{w: w, rc: http.NewResponseController(w), ctx: r.Context(), local: local,
		remote: streamAddr(r.RemoteAddr), done: make(chan struct{})}
}

// Write writes the body p carries as HTTP/1.1 chunks, buffered until Flush.
func (c *streamConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.unusable() {
		return 0, net.ErrClosed
	}
	if err := c.dec.write(p, c.w); err != nil {
		return 0, c.writeError(err)
	}
	return len(p), nil
}

// Flush sends what was written; the outbox calls it at the end of each
// write round.
func (c *streamConn) Flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.unusable() {
		return net.ErrClosed
	}
	err := c.rc.Flush()
	if err != nil {
		err = c.writeError(err)
	}
	// net/http resets a stream whose write deadline passes even while
	// nothing is being written: the deadline is for this round only.
	c.round.Store(0)
	_ = c.rc.SetWriteDeadline(time.Time{})
	if err == nil && c.ctx.Err() != nil {
		// Reset while the round ran: the handler, which saw the round,
		// leaves the close to it.
		err = net.ErrClosed
	}
	return err
}

// SetWriteDeadline starts a write round, bounded by t.
func (c *streamConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.unusable() {
		return net.ErrClosed
	}
	c.round.Store(t.UnixNano())
	return c.rc.SetWriteDeadline(t)
}

// writeError reports a write that failed once its round's deadline had
// passed (net/http then resets the stream) as a timeout, which is how the
// outbox tells a slow client. Lock must be held.
func (c *streamConn) writeError(err error) error {
	if d := c.round.Load(); d != 0 && time.Now().UnixNano() >= d {
		return os.ErrDeadlineExceeded
	}
	return err
}

// unusable reports whether the stream is closed. Lock must be held.
func (c *streamConn) unusable() bool {
	select {
	case <-c.done:
		return true
	default:
		return c.gone
	}
}

// Close ends the stream: the handler wakes up and returns. It never waits,
// so the outbox may call it from the fan-out.
func (c *streamConn) Close() error {
	c.once.Do(func() { close(c.done) })
	return nil
}

// exit makes w off limits before the handler returns, and reports whether
// the response is complete (its last chunk was written).
func (c *streamConn) exit() (complete bool) {
	if !c.mu.TryLock() {
		// A write is in flight; to a client that does not read, it would
		// wait for its deadline. A deadline in the past resets the
		// stream, which ends the write now.
		_ = c.rc.SetWriteDeadline(time.Unix(1, 0))
		c.mu.Lock()
	}
	defer c.mu.Unlock()
	c.gone = true
	return c.dec.ended()
}

// Read reports the end at once: the outbox never reads, and the handler
// goroutine notices the client leave.
func (c *streamConn) Read([]byte) (int, error)        { return 0, io.EOF }
func (c *streamConn) SetReadDeadline(time.Time) error { return nil }
func (c *streamConn) SetDeadline(t time.Time) error   { return c.SetWriteDeadline(t) }
func (c *streamConn) LocalAddr() net.Addr             { return c.local }
func (c *streamConn) RemoteAddr() net.Addr            { return c.remote }

// streamAddr is the client's address as net/http reports it.
type streamAddr string

func (a streamAddr) Network() string { return "tcp" }
func (a streamAddr) String() string  { return string(a) }

// http2Headers drops the header fields HTTP/2 forbids (RFC 9113 8.2.2)
// from responses the edge shapes for HTTP/1.1: the error responses carry
// Mastodon's Connection and Keep-Alive. net/http drops Connection itself
// but sends Keep-Alive, and strict clients (curl, through nghttp2) then
// fail the stream instead of reading the error.
type http2Headers struct {
	http.ResponseWriter
	wrote bool
}

func (w *http2Headers) WriteHeader(code int) {
	if !w.wrote {
		w.wrote = true
		h := w.Header()
		for _, k := range []string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade"} {
			delete(h, k)
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *http2Headers) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the stream's Flush and
// deadlines.
func (w *http2Headers) Unwrap() http.ResponseWriter { return w.ResponseWriter }
