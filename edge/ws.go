package edge

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/spillway/spillway/edge/internal/wsframe"
	"github.com/spillway/spillway/edge/jsjson"
	"github.com/spillway/spillway/edge/store"
)

var (
	// wsCloseKill is a close frame without a status code: what Mastodon
	// sends on `kill` (clients report 1005).
	wsCloseKill      = wsframe.Frame(wsframe.OpClose, nil)
	wsCloseGoingAway = wsframe.Close(wsframe.CloseGoingAway, "")
	wsPing           = wsframe.Frame(wsframe.OpPing, nil)
	wsBinaryRefused  = wsframe.Close(wsframe.CloseUnsupportedData, "The mastodon streaming server does not support binary messages")
	wsUnsubscribeErr = wsframe.Frame(wsframe.OpText, []byte(unsubscribeErrorJSON))
)

// serveUpgrade authenticates a WebSocket upgrade before the handshake, as
// Mastodon does: no scope check here, every failure is a bare HTTP
// response with X-Error-Message.
func (e *Edge) serveUpgrade(w http.ResponseWriter, r *http.Request, reqID string) {
	rq := &streamRequest{id: reqID, transport: transportWS, client: e.clientOf(r), path: r.URL.Path}
	if aerr := e.pace(rq.client); aerr != nil {
		e.refuseUpgrade(w, rq, aerr)
		return
	}
	q := parseQuery(r.URL.RawQuery)
	id, aerr := e.authenticate(r.Context(), r, q)
	if aerr != nil {
		e.refuseUpgrade(w, rq, aerr)
		return
	}
	rq.account = id.AccountID
	protocols, herr := checkHandshake(r)
	if herr != nil {
		e.logRefused(rq, herr)
		extra := ""
		if herr.status == http.StatusBadRequest && herr.msg == msgBadVersion {
			extra = "Sec-WebSocket-Version: 13, 8\r\n"
		}
		rawResponse(w, herr.status, "Connection: close\r\nContent-Type: text/html\r\nContent-Length: "+strconv.Itoa(len(herr.msg))+"\r\n"+extra, herr.msg)
		return
	}
	adm, aerr := e.admit(rq.client, id)
	if aerr != nil {
		e.refuseUpgrade(w, rq, aerr)
		return
	}
	respHeader := http.Header{"X-Request-Id": {reqID}}
	if len(protocols) > 0 {
		respHeader["Sec-Websocket-Protocol"] = []string{protocols[0]}
	}
	// ws accepts protocol version 8 as well as 13; the framing is the same.
	r.Header.Set("Sec-Websocket-Version", "13")
	c, err := e.upgrader().Upgrade(w, r, respHeader)
	if err != nil {
		adm.release()
		e.logger.Debug("websocket upgrade failed", "err", err)
		e.logRefused(rq, errUnexpected)
		return
	}
	e.startWS(c, rq.id, adm, id, q)
}

// refuseUpgrade logs a refused upgrade and refuses it as Mastodon does.
func (e *Edge) refuseUpgrade(w http.ResponseWriter, rq *streamRequest, aerr *apiError) {
	e.logRefused(rq, aerr)
	refuseUpgrade(w, rq.id, aerr)
}

// upgrader is built per call because it is cheap and keeps Edge free of
// shared mutable state; the write buffer pool is the edge's.
func (e *Edge) upgrader() *websocket.Upgrader {
	return &websocket.Upgrader{
		// Small read buffer: clients send little. Writes never go through
		// gorilla's buffers (the outbox writes prepared frames), and the
		// pool lets gorilla hold no write buffer per idle connection.
		ReadBufferSize:  512,
		WriteBufferPool: &e.wsWritePool,
		CheckOrigin:     func(*http.Request) bool { return true },
	}
}

// msgBadVersion is the one handshake error that carries an extra header.
const msgBadVersion = "Missing or invalid Sec-WebSocket-Version header"

// checkHandshake validates the upgrade request as the ws library does,
// with its messages, and returns the offered subprotocols.
func checkHandshake(r *http.Request) ([]string, *apiError) {
	if r.Method != http.MethodGet {
		return nil, &apiError{http.StatusMethodNotAllowed, "Invalid HTTP method"}
	}
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		return nil, &apiError{http.StatusBadRequest, "Invalid Upgrade header"}
	}
	if !validKey(r.Header.Get("Sec-Websocket-Key")) {
		return nil, &apiError{http.StatusBadRequest, "Missing or invalid Sec-WebSocket-Key header"}
	}
	if v := strings.TrimSpace(r.Header.Get("Sec-Websocket-Version")); v != "13" && v != "8" {
		return nil, &apiError{http.StatusBadRequest, msgBadVersion}
	}
	raw := r.Header.Values("Sec-Websocket-Protocol")
	if len(raw) == 0 {
		return nil, nil
	}
	protocols, ok := parseProtocols(strings.Join(raw, ","))
	if !ok {
		return nil, &apiError{http.StatusBadRequest, "Invalid Sec-WebSocket-Protocol header"}
	}
	return protocols, nil
}

// validKey matches /^[+/0-9A-Za-z]{22}==$/.
func validKey(k string) bool {
	if len(k) != 24 || k[22:] != "==" {
		return false
	}
	for i := 0; i < 22; i++ {
		c := k[i]
		if !(c == '+' || c == '/' || '0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') {
			return false
		}
	}
	return true
}

// parseProtocols splits a Sec-WebSocket-Protocol value into tokens; empty
// or duplicate tokens and non-token characters make it invalid.
func parseProtocols(v string) ([]string, bool) {
	var out []string
	for p := range strings.SplitSeq(v, ",") {
		p = strings.Trim(p, " \t")
		if p == "" {
			return nil, false
		}
		for i := 0; i < len(p); i++ {
			if !isTokenChar(p[i]) {
				return nil, false
			}
		}
		for _, x := range out {
			if x == p {
				return nil, false
			}
		}
		out = append(out, p)
	}
	return out, true
}

func isTokenChar(c byte) bool {
	if c <= ' ' || c >= 0x7f {
		return false
	}
	return !strings.ContainsRune("()<>@,;:\\\"/[]?={}", rune(c))
}

// refuseUpgrade is Mastodon's refusal of an upgrade: empty body, the
// message in X-Error-Message.
func refuseUpgrade(w http.ResponseWriter, reqID string, e *apiError) {
	rawResponse(w, e.status, "Connection: close\r\nContent-Type: text/plain\r\nContent-Length: 0\r\nX-Request-Id: "+reqID+"\r\nX-Error-Message: "+e.msg+"\r\n", "")
}

// rawResponse writes a bare HTTP response on the hijacked socket and closes
// it, as Node's upgrade path does (no Date, no CORS).
func rawResponse(w http.ResponseWriter, status int, headers, body string) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = brw.WriteString("HTTP/1.1 " + strconv.Itoa(status) + " " + http.StatusText(status) + "\r\n" + headers + "\r\n" + body)
	_ = brw.Flush()
}

// wsSession is the WebSocket side of a session: the client's input and
// the keep-alive state.
//
// No goroutine waits on an idle client: the edge's watcher starts a round
// of reading (consume) when input arrives, and the round ends when the
// socket is drained. Each round is work in the session's life, so teardown
// waits for it.
type wsSession struct {
	*session
	alive  atomic.Bool
	in     wsframe.Reader
	forget func()        // drops the socket from the watcher
	pace   subscribePace // used by input rounds only, one at a time
}

func (e *Edge) startWS(c *websocket.Conn, reqID string, adm admission, id store.Identity, q query) {
	// gorilla's Conn is dropped here: it did the handshake, the outbox
	// writes and wsframe.Reader reads.
	conn := c.NetConn()
	_ = conn.SetDeadline(time.Time{})
	s := &wsSession{session: e.newSession(reqID, id, transportWS)}
	s.in.Limit = e.cfg.MaxMessageSize
	s.alive.Store(true)
	if !e.open(s.session, adm, conn, s) {
		return
	}
	if stream, ok := q.first("stream"); ok && stream != "" {
		s.subscribeStream(stream, queryParam(q, "tag"), queryParam(q, "list"))
	}
	var ok bool
	if s.forget, ok = e.watch.serveInput(conn, s.consume, s.out.end); !ok {
		s.out.abort(reasonServerError)
	}
	s.start(nil) // gorilla wrote the response head
}

// consume is one round of reading: it handles what the socket holds and
// reports whether to wait for more.
func (s *wsSession) consume(read func([]byte) (int, error)) bool {
	if !s.life.enter() {
		return false
	}
	defer s.life.leave()
	var buf [1024]byte
	for {
		n, err := read(buf[:])
		if n > 0 && !s.in.Feed(buf[:n], s) {
			return false
		}
		switch {
		case err == nil:
		case errors.Is(err, errWouldBlock):
			return true
		default:
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.edge.logger.Debug("websocket read", "err", err)
			}
			s.out.end()
			return false
		}
	}
}

// kill closes without a status code, as Mastodon does (clients report
// 1005); goingAway closes with 1001.
func (s *wsSession) kill()                     { s.out.finish(wsCloseKill, reasonKill) }
func (s *wsSession) goingAway(why closeReason) { s.out.finish(wsCloseGoingAway, why) }

// keepAlive is Mastodon's ping: a client that did not answer the previous
// ping is cut without a close frame.
func (s *wsSession) keepAlive() {
	if !s.alive.Swap(false) {
		s.out.abort(reasonPingTimeout)
		return
	}
	s.out.send(wsPing)
}

func (s *wsSession) release() {
	if s.forget != nil {
		s.forget()
	}
}

// GotMessage, GotPing, GotPong and GotClose make wsSession the
// wsframe.Handler of its reader.
func (s *wsSession) GotMessage(op byte, data []byte) bool {
	if op == wsframe.OpBinary {
		s.out.finish(wsBinaryRefused, reasonProtocol)
		return false
	}
	s.handleMessage(data)
	return true
}

func (s *wsSession) GotPing(data []byte) { s.out.send(wsframe.Frame(wsframe.OpPong, data)) }

func (s *wsSession) GotPong() { s.alive.Store(true) }

// GotClose echoes the client's close code, or answers a protocol violation
// with its code, and closes once queued frames are out. The codes of
// violations are logged as protocol errors (also when a client sends one
// of them itself), every other close as the client leaving.
func (s *wsSession) GotClose(code int) {
	why := reasonClientLeft
	if wsframe.Violation(code) {
		why = reasonProtocol
	}
	if code == wsframe.CloseNoStatus {
		s.out.finish(wsCloseKill, why)
		return
	}
	s.out.finish(wsframe.Close(code, ""), why)
}

// handleMessage applies one client message.
func (s *wsSession) handleMessage(data []byte) {
	m, ok := classifyMessage(data)
	if !ok {
		return
	}
	if m.subscribe {
		if !s.pace.allow(s.edge.cfg.Limits, time.Now()) {
			s.refuseSubscribe(refusedSubscribeRate, errTooManyRequests)
			return
		}
		s.subscribeStream(m.stream, m.tag, m.list)
	} else {
		s.unsubscribeStream(m.stream, m.tag, m.list)
	}
}

// clientMessage is a subscribe or unsubscribe request.
type clientMessage struct {
	subscribe bool
	stream    string
	tag, list *jsjson.Value
}

// classifyMessage parses a client message as Mastodon does: invalid JSON,
// falsy values and types other than subscribe/unsubscribe are ignored
// without reply; stream may be an array, whose first element counts.
func classifyMessage(data []byte) (clientMessage, bool) {
	v, err := jsjson.Parse(data)
	if err != nil || !v.Truthy() {
		return clientMessage{}, false
	}
	typ, _ := v.Get("type").Str()
	if typ != "subscribe" && typ != "unsubscribe" {
		return clientMessage{}, false
	}
	stream := v.Get("stream")
	if stream.Kind() == jsjson.Array {
		stream = stream.Index(0)
	}
	name, _ := stream.Str()
	return clientMessage{subscribe: typ == "subscribe", stream: name, tag: v.Get("tag"), list: v.Get("list")}, true
}

// subscribeStream handles a subscribe request: scope, then resolution,
// then the subscription; failures are error frames.
func (s *wsSession) subscribeStream(stream string, tag, list *jsjson.Value) {
	if !allows(s.id, stream) {
		s.sendError(errScopes)
		return
	}
	ctx, cancel := s.edge.queryContext()
	defer cancel()
	r, aerr := s.edge.resolve(ctx, s.id, stream, tag, list)
	if aerr != nil {
		s.sendError(aerr)
		return
	}
	if !s.room(r.key, s.edge.cfg.Limits.StreamsPerSocket) {
		s.refuseSubscribe(refusedStreams, errTooManyStreams)
		return
	}
	if _, err := s.subscribe(r); err != nil {
		s.edge.logger.Error("websocket subscribe", "err", err)
		s.sendError(errUnexpected)
	}
}

// unsubscribeStream handles an unsubscribe request: resolved again (no
// scope check), and silent when nothing matches.
func (s *wsSession) unsubscribeStream(stream string, tag, list *jsjson.Value) {
	ctx, cancel := s.edge.queryContext()
	defer cancel()
	r, aerr := s.edge.resolve(ctx, s.id, stream, tag, list)
	if aerr != nil {
		s.out.send(wsUnsubscribeErr)
		return
	}
	s.unsubscribe(r.key)
}

// refuseSubscribe counts a subscribe refused by a per-socket limit and
// answers it with an error frame; the socket stays open.
func (s *wsSession) refuseSubscribe(reason string, aerr *apiError) {
	s.edge.metrics.subscriptionsRefused.WithLabelValues(reason).Inc()
	s.sendError(aerr)
}

// sendError sends {"error":"…","status":N}.
func (s *wsSession) sendError(e *apiError) {
	msg := `{"error":` + strconv.Quote(e.msg) + `,"status":` + strconv.Itoa(e.status) + `}`
	s.out.send(wsframe.Frame(wsframe.OpText, []byte(msg)))
}
