package edge

import (
	"html"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// ssePaths maps Mastodon's SSE paths to stream names; matching is exact
// and case-sensitive on the raw path.
var ssePaths = map[string]string{
	"/api/v1/streaming/user":              "user",
	"/api/v1/streaming/user/notification": "user:notification",
	"/api/v1/streaming/public":            "public",
	"/api/v1/streaming/public/local":      "public:local",
	"/api/v1/streaming/public/remote":     "public:remote",
	"/api/v1/streaming/hashtag":           "hashtag",
	"/api/v1/streaming/hashtag/local":     "hashtag:local",
	"/api/v1/streaming/direct":            "direct",
	"/api/v1/streaming/list":              "list",
}

// ServeHTTP is the edge's whole HTTP surface, in Mastodon's order:
// WebSocket upgrades first, then CORS preflight, health, metrics and favicon,
// then the stream paths (unknown path before authentication). Spillway adds
// /readyz.
func (e *Edge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor > 1 {
		w = &http2Headers{ResponseWriter: w}
	}
	reqID := uuid.NewString()
	if isUpgrade(r) {
		e.serveUpgrade(w, r, reqID)
		return
	}
	h := w.Header()
	h["X-Powered-By"] = []string{"Express"}
	h["X-Request-Id"] = []string{reqID}
	h["Access-Control-Allow-Origin"] = []string{"*"}
	if r.Method == http.MethodOptions {
		preflight(w, r)
		return
	}
	path, rawQuery, _ := strings.Cut(r.RequestURI, "?")
	if !strings.HasPrefix(path, "/") {
		// Absolute-form request target: use the parsed path.
		path, rawQuery = r.URL.EscapedPath(), r.URL.RawQuery
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		switch path {
		case "/api/v1/streaming/health":
			e.serveHealth(w)
			return
		case "/readyz":
			e.serveReady(w)
			return
		case "/metrics":
			h["Cache-Control"] = []string{"private, no-store"}
			e.metricsHandler.ServeHTTP(w, r)
			return
		case "/favicon.ico":
			w.WriteHeader(http.StatusNotFound)
			return
		}
	}
	stream, ok := ssePaths[path]
	rq := &streamRequest{id: reqID, transport: transportSSE, client: e.clientOf(r), path: path, stream: stream}
	if !ok {
		e.refuseSSE(w, rq, errUnknownChannel)
		return
	}
	if aerr := e.pace(rq.client); aerr != nil {
		e.refuseSSE(w, rq, aerr)
		return
	}
	q := parseQuery(rawQuery)
	id, aerr := e.authenticate(r.Context(), r, q)
	if aerr != nil {
		e.refuseSSE(w, rq, aerr)
		return
	}
	rq.account = id.AccountID
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		// Authenticated, but Express has no route for the method.
		e.logRefused(rq, &apiError{http.StatusNotFound, "Cannot " + r.Method})
		expressNotFound(w, r)
		return
	}
	e.serveSSE(w, r, rq, id, q)
}

// pace applies the per-address pace of new streaming requests, before
// authentication so that a flood of bad tokens reaches Postgres no faster.
func (e *Edge) pace(c client) *apiError {
	if !e.perClient.allowNew(c.limitKey(), time.Now()) {
		return e.refusal(refusedConnectRate, errTooManyRequests)
	}
	return nil
}

// refuseSSE logs a refused SSE request and sends Mastodon's JSON error.
func (e *Edge) refuseSSE(w http.ResponseWriter, rq *streamRequest, aerr *apiError) {
	e.logRefused(rq, aerr)
	writeError(w, aerr)
}

// isUpgrade reports a request Node would hand to the 'upgrade' event:
// a Connection header with the upgrade token and an Upgrade header.
func isUpgrade(r *http.Request) bool {
	if r.Header.Get("Upgrade") == "" {
		return false
	}
	for _, v := range r.Header.Values("Connection") {
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "upgrade") {
				return true
			}
		}
	}
	return false
}

// preflight answers OPTIONS as the cors package's defaults do.
func preflight(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h["Access-Control-Allow-Methods"] = []string{"GET,HEAD,PUT,PATCH,POST,DELETE"}
	if reqHeaders := r.Header.Get("Access-Control-Request-Headers"); reqHeaders != "" {
		h["Access-Control-Allow-Headers"] = []string{reqHeaders}
		h.Add("Vary", "Access-Control-Request-Headers")
	}
	h["Content-Length"] = []string{"0"}
	w.WriteHeader(http.StatusNoContent)
}

// serveHealth answers OK only while the edge can deliver events: unlike
// Mastodon's (always OK), it reports 503 while draining or while NATS is
// disconnected, so a load balancer routes clients elsewhere.
func (e *Edge) serveHealth(w http.ResponseWriter) {
	h := w.Header()
	h["Content-Type"] = []string{"text/plain"}
	h["Cache-Control"] = []string{"private, no-store"}
	status, body := http.StatusOK, "OK"
	switch {
	case e.draining.Load():
		status, body = http.StatusServiceUnavailable, "Shutting down"
	case !e.cfg.NATS.IsConnected():
		status, body = http.StatusServiceUnavailable, "NATS unavailable"
	}
	w.WriteHeader(status)
	// Mastodon sends the body chunked; flushing the header first does too.
	http.NewResponseController(w).Flush()
	_, _ = w.Write([]byte(body))
}

// writeError sends Mastodon's JSON error response: {"error":"…"}, chunked,
// no trailing newline.
func writeError(w http.ResponseWriter, err *apiError) {
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h["Connection"] = []string{"keep-alive"}
	h["Keep-Alive"] = []string{"timeout=5"}
	w.WriteHeader(err.status)
	http.NewResponseController(w).Flush()
	_, _ = w.Write(errorJSON(err.msg))
}

func errorJSON(msg string) []byte {
	return []byte(`{"error":` + strconv.Quote(msg) + `}`)
}

// expressNotFound reproduces Express's default 404 page.
func expressNotFound(w http.ResponseWriter, r *http.Request) {
	body := "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>Error</title>\n</head>\n<body>\n<pre>Cannot " +
		html.EscapeString(r.Method) + " " + html.EscapeString(r.RequestURI) + "</pre>\n</body>\n</html>\n"
	h := w.Header()
	h["Content-Security-Policy"] = []string{"default-src 'none'"}
	h["X-Content-Type-Options"] = []string{"nosniff"}
	h["Content-Type"] = []string{"text/html; charset=utf-8"}
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(http.StatusNotFound)
	_, _ = w.Write([]byte(body))
}
