package edge

import (
	"context"
	"net/http"
	"time"

	"github.com/spillway/spillway/edge/store"
)

var (
	sseOpen       = appendChunk(nil, []byte(":)\n"))
	sseThump      = appendChunk(nil, []byte(":thump\n\n"))
	sseTerminator = []byte("0\r\n\r\n")
)

// serveSSE runs the checks that follow authentication (§6), then takes the
// socket over from net/http: the response head and every chunk are written
// by the session's outbox, and the handler goroutine returns at once. What
// stays per idle client is one goroutine parked in read(2) to notice the
// client leaving, with a tiny buffer.
func (e *Edge) serveSSE(w http.ResponseWriter, r *http.Request, reqID string, id store.Identity, stream string, q query) {
	if !allows(id, stream) {
		writeError(w, errScopes)
		return
	}
	e.metrics.connectedChannels.WithLabelValues("eventsource", "system").Add(2)
	systemCounted := true
	defer func() {
		if systemCounted {
			e.metrics.connectedChannels.WithLabelValues("eventsource", "system").Sub(2)
		}
	}()
	switch stream {
	case "public", "public:local", "public:remote":
		if v, ok := q["only_media"]; ok && onlyMedia(v) {
			stream += ":media"
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), e.cfg.QueryTimeout)
	res, aerr := e.resolve(ctx, id, stream, queryParam(q, "tag"), queryParam(q, "list"))
	cancel()
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	if r.Method == http.MethodHead {
		h := w.Header()
		h["Content-Type"] = []string{"text/event-stream"}
		h["Cache-Control"] = []string{"private, no-store"}
		w.WriteHeader(http.StatusOK)
		return
	}
	if e.draining.Load() {
		writeError(w, errDraining)
		return
	}
	if !e.admit() {
		writeError(w, errTooMany)
		return
	}
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		e.conns.Add(-1)
		e.logger.Error("sse hijack", "err", err)
		writeError(w, errUnexpected)
		return
	}
	_ = conn.SetDeadline(time.Time{})
	s := e.newSession(id, transportSSE)
	s.attach(newOutbox(conn, &e.limits, s.closed))
	s.onKill = func() { s.out.finish(sseTerminator) }
	// The session ends when the outbox closes the socket: because the
	// client left (the watcher ends the outbox), or on kill, a slow
	// client or shutdown.
	var (
		slot   int
		forget func()
	)
	s.life.teardown = func() {
		if forget != nil {
			forget()
		}
		e.sseBeats.remove(s, slot)
		s.unsubscribeAll()
		e.metrics.connectedClients.WithLabelValues("eventsource").Dec()
		e.metrics.connectedChannels.WithLabelValues("eventsource", res.stream).Dec()
		e.metrics.connectedChannels.WithLabelValues("eventsource", "system").Sub(2)
		e.conns.Add(-1)
		e.untrack(s)
	}
	if !e.track(s) {
		e.conns.Add(-1)
		_ = conn.Close()
		return
	}
	systemCounted = false
	s.out.hold()
	s.listenSystem()
	if _, err := s.subscribe(res, ""); err != nil {
		e.logger.Error("sse subscribe", "err", err)
		s.out.abort()
	}
	s.out.release(sseHead(reqID, r.Close))
	e.metrics.connectedClients.WithLabelValues("eventsource").Inc()
	e.metrics.connectedChannels.WithLabelValues("eventsource", res.stream).Inc()
	slot = e.sseBeats.add(s)
	var ok bool
	if forget, ok = e.watch.watchClose(conn, s.out.end); !ok {
		// Not watchable: end now rather than hold a client nobody
		// would notice leaving.
		s.out.abort()
	}
	s.life.leave()
}

// admit counts a new streaming connection against MaxConnections.
func (e *Edge) admit() bool {
	n := e.conns.Add(1)
	if e.cfg.MaxConnections > 0 && n > int64(e.cfg.MaxConnections) {
		e.conns.Add(-1)
		return false
	}
	return true
}

// sseHead is the response head Mastodon sends, in Node's header order,
// followed by the opening ":)" chunk.
func sseHead(reqID string, closeConn bool) []byte {
	b := make([]byte, 0, 320)
	b = append(b, "HTTP/1.1 200 OK\r\nX-Powered-By: Express\r\nX-Request-Id: "...)
	b = append(b, reqID...)
	b = append(b, "\r\nAccess-Control-Allow-Origin: *\r\nContent-Type: text/event-stream\r\nCache-Control: private, no-store\r\nTransfer-Encoding: chunked\r\nDate: "...)
	b = time.Now().UTC().AppendFormat(b, http.TimeFormat)
	if closeConn {
		b = append(b, "\r\nConnection: close\r\n\r\n"...)
	} else {
		b = append(b, "\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n"...)
	}
	return append(b, sseOpen...)
}

// onlyMedia applies Mastodon's truthiness for only_media (§4): anything but
// a missing/empty value or one of 0 f F false FALSE off OFF; a repeated
// parameter is an array and therefore true.
func onlyMedia(vals []string) bool {
	if len(vals) != 1 {
		return len(vals) > 1
	}
	switch vals[0] {
	case "", "0", "f", "F", "false", "FALSE", "off", "OFF":
		return false
	}
	return true
}

// goingAway ends a session for shutdown: the SSE response is completed, a
// WebSocket gets close 1001.
func (s *session) goingAway() {
	if s.transport == transportWS {
		s.out.finish(wsCloseGoingAway)
		return
	}
	s.out.finish(sseTerminator)
}
