package edge

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"time"
)

// The connection log: one info line when a connection opens, one when it
// closes, one for each streaming request refused, in the edge's JSON
// logs. No line carries a token: they are built from the request id, the
// derived addresses, the account id, stream names and the path, never
// from headers or the query string.

// streamRequest is a streaming request (an SSE path or a WebSocket
// upgrade) on its way to becoming a session: what a refusal's log line
// names.
type streamRequest struct {
	id        string // X-Request-Id
	transport transport
	client    client
	path      string // without the query, which may hold the token
	stream    string // SSE: the path's stream name
	account   int64  // once authenticated
}

// logRefused writes the line of a refused streaming request. A path that
// is no stream at all (400 Unknown channel: scanners, typos) is logged
// at debug only; every other refusal at info.
func (e *Edge) logRefused(rq *streamRequest, aerr *apiError) {
	level := slog.LevelInfo
	if aerr == errUnknownChannel {
		level = slog.LevelDebug
	}
	if !e.logger.Enabled(context.Background(), level) {
		return
	}
	attrs := []any{"request_id", rq.id, "transport", rq.transport.String(), "status", aerr.status, "error", aerr.msg}
	attrs = append(attrs, rq.client.logAttrs()...)
	attrs = append(attrs, "path", rq.path)
	if rq.stream != "" {
		attrs = append(attrs, "stream", rq.stream)
	}
	if rq.account != 0 {
		attrs = append(attrs, "account_id", accountText(rq.account))
	}
	e.logger.Log(context.Background(), level, "connection refused", attrs...)
}

// logRefused writes the refusal line of a session that never opened (the
// edge began draining while it was set up).
func (s *session) logRefused(aerr *apiError) {
	s.edge.logRefused(&streamRequest{id: s.reqID, transport: s.transport, client: s.adm.client, account: s.id.AccountID}, aerr)
}

// logAttrs are the fields both lines of a connection share. streams are
// the stream names subscribed so far (SSE: its one stream; WebSocket:
// every name subscribed over the connection's life, also those
// unsubscribed since).
func (s *session) logAttrs() []any {
	s.mu.Lock()
	names := slices.Clone(s.names)
	s.mu.Unlock()
	if names == nil {
		names = []string{}
	}
	attrs := []any{"request_id", s.reqID, "transport", s.transport.String(), "account_id", accountText(s.id.AccountID)}
	attrs = append(attrs, s.adm.client.logAttrs()...)
	return append(attrs, "streams", names)
}

// accountText is an account id as the logs write it: a string, as
// Mastodon's own logs and API do, since ids beyond 2^53 lose digits in
// many JSON readers.
func accountText(id int64) string { return strconv.FormatInt(id, 10) }

// logOpened writes the line of a connection that opened.
func (s *session) logOpened() {
	if s.edge.logger.Enabled(context.Background(), slog.LevelInfo) {
		s.edge.logger.Info("connection opened", s.logAttrs()...)
	}
}

// logClosed writes the line of a connection that closed: how long it
// lasted, the bytes the kernel accepted for it, the event frames it was
// handed (as messages_sent_total counts them) and why it ended.
func (s *session) logClosed() {
	if !s.edge.logger.Enabled(context.Background(), slog.LevelInfo) {
		return
	}
	written, events, why := s.out.stats()
	attrs := append(s.logAttrs(),
		"duration", time.Since(s.opened).Round(time.Millisecond).String(),
		"bytes", written, "events", events, "reason", why.String())
	s.edge.logger.Info("connection closed", attrs...)
}
