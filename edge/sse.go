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

// serveSSE runs the checks that follow authentication, then takes the
// socket over from net/http: the response head and every chunk are written
// by the session's outbox, and the handler goroutine returns at once. No
// goroutine waits on an idle client: the edge's watcher notices it leaving.
// An HTTP/2 stream cannot be taken over: serveSSEStream serves it.
func (e *Edge) serveSSE(w http.ResponseWriter, r *http.Request, rq *streamRequest, id store.Identity, q query) {
	stream := rq.stream
	if !allows(id, stream) {
		e.refuseSSE(w, rq, errScopes)
		return
	}
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
		e.refuseSSE(w, rq, aerr)
		return
	}
	if r.Method == http.MethodHead {
		h := w.Header()
		h["Content-Type"] = []string{"text/event-stream"}
		h["Cache-Control"] = []string{"private, no-store"}
		w.WriteHeader(http.StatusOK)
		return
	}
	adm, aerr := e.admit(rq.client, id)
	if aerr != nil {
		e.refuseSSE(w, rq, aerr)
		return
	}
	if r.ProtoMajor > 1 {
		e.serveSSEStream(w, r, rq, adm, id, res)
		return
	}
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		adm.release()
		e.logger.Error("sse hijack", "err", err)
		e.refuseSSE(w, rq, errUnexpected)
		return
	}
	_ = conn.SetDeadline(time.Time{})
	s := &sseSession{session: e.newSession(rq.id, id, transportSSE)}
	if !e.open(s.session, adm, conn, s) {
		return
	}
	if _, err := s.subscribe(res); err != nil {
		e.logger.Error("sse subscribe", "err", err)
		s.out.abort(reasonServerError)
	}
	// The session ends when the outbox closes the socket: because the
	// client left (the watcher ends the outbox), or on kill, a slow
	// client or shutdown.
	var ok bool
	if s.forget, ok = e.watch.watchClose(conn, s.out.end); !ok {
		// Not watchable: end now rather than hold a client nobody
		// would notice leaving.
		s.out.abort(reasonServerError)
	}
	s.start(sseHead(rq.id, r.Close))
}

// sseSession is the SSE side of a session.
type sseSession struct {
	*session
	forget func() // drops the socket from the watcher
}

// kill and goingAway complete the response, as Mastodon ends it on kill.
func (s *sseSession) kill()                     { s.out.finish(sseTerminator, reasonKill) }
func (s *sseSession) goingAway(why closeReason) { s.out.finish(sseTerminator, why) }
func (s *sseSession) keepAlive()                { s.out.send(sseThump) }

func (s *sseSession) release() {
	if s.forget != nil {
		s.forget()
	}
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

// onlyMedia applies Mastodon's truthiness for only_media: anything but
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
