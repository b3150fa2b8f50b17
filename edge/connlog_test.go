package edge

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/spillway/spillway/shared/channel"
	"github.com/spillway/spillway/shared/testenv"
)

// logged returns the JSON lines with msg whose fields include want.
func (l *jsonLog) logged(msg string, want map[string]any) []map[string]any {
	l.mu.Lock()
	text := l.buf.String()
	l.mu.Unlock()
	var out []map[string]any
	for line := range strings.SplitSeq(text, "\n") {
		var m map[string]any
		d := json.NewDecoder(strings.NewReader(line))
		d.UseNumber()
		if d.Decode(&m) != nil || m["msg"] != msg {
			continue
		}
		ok := true
		for k, v := range want {
			ok = ok && fmt.Sprint(m[k]) == fmt.Sprint(v)
		}
		if ok {
			out = append(out, m)
		}
	}
	return out
}

// await waits for exactly one line with msg and want, and returns it.
func (l *jsonLog) await(t *testing.T, msg string, want map[string]any) map[string]any {
	t.Helper()
	var line map[string]any
	testenv.Eventually(t, 10*time.Second, func() error {
		switch got := l.logged(msg, want); len(got) {
		case 0:
			return fmt.Errorf("no %q line with %v in:\n%s", msg, want, l.text())
		case 1:
			line = got[0]
			return nil
		default:
			return fmt.Errorf("%d %q lines with %v", len(got), msg, want)
		}
	})
	return line
}

func (l *jsonLog) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// loggedHarness is a harness whose edge logs JSON at level into the
// returned log.
func loggedHarness(t *testing.T, level slog.Level, mods ...func(*Config)) (*harness, *jsonLog) {
	log := &jsonLog{}
	logger := slog.New(slog.NewJSONHandler(log, &slog.HandlerOptions{Level: level}))
	return newHarness(t, append([]func(*Config){func(c *Config) { c.Logger = logger }}, mods...)...), log
}

// An SSE connection logs one line when it opens and one when it closes:
// request id, transport, account, the client's address and the proxy's,
// its stream, and at the end how long it lasted, exactly the bytes the
// client received, the events and why it ended.
func TestConnectionLogSSE(t *testing.T) {
	t.Parallel()
	h, log := loggedHarness(t, slog.LevelInfo)
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /api/v1/streaming/public/local HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nX-Forwarded-For: 203.0.113.7\r\n\r\n", testenv.AliceReadToken)
	counted := &countingReader{r: conn}
	r := bufio.NewReader(counted)
	resp, err := http.ReadResponse(r, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", resp, err)
	}
	reqID := resp.Header.Get("X-Request-Id")
	common := map[string]any{"request_id": reqID, "transport": "eventsource", "account_id": testenv.Alice,
		"remote_addr": "203.0.113.7", "peer_addr": "127.0.0.1", "streams": []string{"public:local"}}
	log.await(t, "connection opened", common)
	h.publish(channel.Public(channel.ScopeLocal, false), `{"event":"delete","payload":"1"}`)
	for {
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "data: 1\n" {
			if _, err := r.ReadString('\n'); err != nil { // the blank line, then the chunk's CRLF
				t.Fatal(err)
			}
			if _, err := r.ReadString('\n'); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if r.Buffered() != 0 {
		t.Fatalf("%d bytes more than expected", r.Buffered())
	}
	conn.Close()
	closed := log.await(t, "connection closed", common)
	if closed["reason"] != "client_left" || fmt.Sprint(closed["events"]) != "1" || fmt.Sprint(closed["bytes"]) != strconv.Itoa(counted.n) {
		t.Fatalf("closed line %v; the client read %d bytes", closed, counted.n)
	}
	if d, err := time.ParseDuration(fmt.Sprint(closed["duration"])); err != nil || d <= 0 {
		t.Fatalf("duration %v", closed["duration"])
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// A WebSocket's lines name the streams subscribed so far: at the open the
// query's, at the close every stream subscribed over its life.
func TestConnectionLogWebSocket(t *testing.T) {
	t.Parallel()
	h, log := loggedHarness(t, slog.LevelInfo)
	c, resp, err := h.ws("/api/v1/streaming?stream=user&access_token="+testenv.AliceReadToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	common := map[string]any{"request_id": resp.Header.Get("X-Request-Id"), "transport": "websocket", "account_id": testenv.Alice, "remote_addr": "127.0.0.1"}
	opened := log.await(t, "connection opened", common)
	if fmt.Sprint(opened["streams"]) != "[user]" || opened["peer_addr"] != nil {
		t.Fatalf("opened line %v", opened)
	}
	sendJSON(t, c, `{"type":"subscribe","stream":"hashtag","tag":"foo"}`)
	h.waitChannels("websocket", "hashtag", 1)
	sendJSON(t, c, `{"type":"unsubscribe","stream":"hashtag","tag":"foo"}`)
	h.waitChannels("websocket", "hashtag", 0)
	h.publish(channel.Home(testenv.Alice), `{"event":"delete","payload":"1"}`)
	readText(t, c)
	_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	closed := log.await(t, "connection closed", common)
	if n, _ := closed["bytes"].(json.Number).Int64(); fmt.Sprint(closed["streams"]) != "[user hashtag]" || closed["reason"] != "client_left" || fmt.Sprint(closed["events"]) != "1" || n < 40 {
		t.Fatalf("closed line %v", closed)
	}
}

// Every way a connection ends has its reason in the close line.
func TestConnectionCloseReasons(t *testing.T) {
	t.Parallel()
	h, log := loggedHarness(t, slog.LevelInfo, func(c *Config) {
		c.PingInterval = 300 * time.Millisecond
		c.MaxQueueFrames = 2
	})
	tests := []struct {
		reason string
		run    func(t *testing.T) string // returns the request id
	}{
		{"kill", func(t *testing.T) string {
			c := h.sse("/api/v1/streaming/user", testenv.BobReadToken)
			h.publish(channel.System(testenv.Bob), `{"event":"kill"}`)
			c.expectEnd()
			return c.resp.Header.Get("X-Request-Id")
		}},
		{"ping_timeout", func(t *testing.T) string {
			c, resp, err := h.ws("/api/v1/streaming?access_token=carol-read-token", nil)
			if err != nil {
				t.Fatal(err)
			}
			c.SetPingHandler(func(string) error { return nil }) // never answers
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			for err == nil {
				_, _, err = c.ReadMessage()
			}
			return resp.Header.Get("X-Request-Id")
		}},
		{"protocol_error", func(t *testing.T) string {
			c, resp, err := h.ws("/api/v1/streaming?access_token=heidi-read-token", nil)
			if err != nil {
				t.Fatal(err)
			}
			_ = c.WriteMessage(websocket.BinaryMessage, []byte{1})
			return resp.Header.Get("X-Request-Id")
		}},
		{"slow_client", func(t *testing.T) string {
			conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.(*net.TCPConn).SetReadBuffer(4096)
			fmt.Fprintf(conn, "GET /api/v1/streaming/user HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer mallory-read-token\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			h.waitChannels("eventsource", "user", 1)
			big := `{"event":"delete","payload":"` + strings.Repeat("x", 256<<10) + `"}`
			testenv.Eventually(t, 20*time.Second, func() error {
				h.publish(channel.Home(testenv.Mallory), big) // never read
				if len(log.logged("connection closed", map[string]any{"account_id": testenv.Mallory})) == 0 {
					return fmt.Errorf("not cut off yet")
				}
				return nil
			})
			return resp.Header.Get("X-Request-Id")
		}},
		{"nats_lost", func(t *testing.T) string {
			c := h.sse("/api/v1/streaming/user", "alice-statuses-token")
			h.edge.closeSessions(0, nil, nil, reasonNATSLost)
			c.expectEnd()
			return c.resp.Header.Get("X-Request-Id")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.reason, func(t *testing.T) {
			id := tc.run(t)
			log.await(t, "connection closed", map[string]any{"request_id": id, "reason": tc.reason})
		})
	}
}

// Shutdown logs its start with the number of clients, each client's close
// with reason shutdown, and its end with how long it took.
func TestDrainLogLines(t *testing.T) {
	t.Parallel()
	h, log := loggedHarness(t, slog.LevelInfo)
	sse := h.sse("/api/v1/streaming/user", testenv.AliceReadToken)
	_, resp, err := h.ws("/api/v1/streaming?stream=user&access_token="+testenv.BobReadToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	h.waitChannels("websocket", "user", 1)
	h.stop()
	log.await(t, "draining", map[string]any{"clients": 2})
	drained := log.await(t, "drained", map[string]any{"cut": 0})
	if _, err := time.ParseDuration(fmt.Sprint(drained["took"])); err != nil {
		t.Fatalf("drained line %v", drained)
	}
	for _, id := range []string{sse.resp.Header.Get("X-Request-Id"), resp.Header.Get("X-Request-Id")} {
		log.await(t, "connection closed", map[string]any{"request_id": id, "reason": "shutdown"})
	}
	if strings.Index(log.text(), `"msg":"draining"`) > strings.Index(log.text(), `"msg":"drained"`) {
		t.Fatal("drained before draining")
	}
}

// A refused streaming request logs one line with its status, its error,
// the addresses and the path; the account once it is known. A path that
// is no stream is logged at debug only.
func TestRefusedLogLines(t *testing.T) {
	t.Parallel()
	h, log := loggedHarness(t, slog.LevelInfo, func(c *Config) { c.Limits.ConnectionsPerAccount = 1 })
	resp, _ := h.get("GET", "/api/v1/streaming/public?access_token=nope", http.Header{"X-Forwarded-For": {"203.0.113.7"}})
	log.await(t, "connection refused", map[string]any{"request_id": resp.Header.Get("X-Request-Id"), "transport": "eventsource",
		"status": 401, "error": "Invalid access token", "remote_addr": "203.0.113.7", "peer_addr": "127.0.0.1",
		"path": "/api/v1/streaming/public", "stream": "public"})
	h.sse("/api/v1/streaming/user", testenv.BobReadToken)
	_, resp, err := h.ws("/api/v1/streaming/whatever?access_token="+testenv.BobReadToken, nil)
	if err == nil {
		t.Fatal("not refused")
	}
	log.await(t, "connection refused", map[string]any{"request_id": resp.Header.Get("X-Request-Id"), "transport": "websocket",
		"status": 429, "error": "Too many connections for this account", "account_id": testenv.Bob, "path": "/api/v1/streaming/whatever"})
	resp, _ = h.get("GET", "/api/v1/streaming/nope", nil)
	if resp.StatusCode != 400 || len(log.logged("connection refused", map[string]any{"request_id": resp.Header.Get("X-Request-Id")})) != 0 {
		t.Fatal("unknown path logged at info")
	}
}

// No log line ever carries a token, at debug level, whatever the source
// of the token (Authorization with and without Bearer, the query, the
// WebSocket subprotocol), the transport, and whether the request is
// served or refused (invalid token, missing scope, a limit).
func TestLogsCarryNoToken(t *testing.T) {
	t.Parallel()
	h, log := loggedHarness(t, slog.LevelDebug, func(c *Config) { c.Limits.ConnectionsPerIP = 1 })
	const invalid = "s3cret-but-invalid-token"
	tokens := []string{testenv.AliceReadToken, "alice-profile-token", invalid}
	sources := map[string]func(req *http.Request, token string){
		"bearer":      func(req *http.Request, tok string) { req.Header.Set("Authorization", "Bearer "+tok) },
		"bare header": func(req *http.Request, tok string) { req.Header.Set("Authorization", tok) },
		"query": func(req *http.Request, tok string) {
			req.URL.RawQuery += "&access_token=" + tok
		},
		"subprotocol": func(req *http.Request, tok string) { req.Header.Set("Sec-WebSocket-Protocol", tok) },
	}
	n := 0
	addr := func() string { n++; return "198.51.100." + strconv.Itoa(n) }
	var open []io.Closer
	for name, set := range sources {
		for _, tok := range tokens {
			for _, path := range []string{"/api/v1/streaming/public/local?x=1", "/api/v1/streaming/user?x=1"} {
				req, _ := http.NewRequest("GET", h.url+path, nil)
				set(req, tok)
				req.Header.Set("X-Forwarded-For", addr())
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				open = append(open, resp.Body)
				// The same address again: over the limit.
				req.Header.Set("X-Forwarded-For", "198.51.100."+strconv.Itoa(n))
				if resp, err := http.DefaultClient.Do(req); err == nil {
					resp.Body.Close()
				}
			}
			hdr := http.Header{"X-Forwarded-For": {addr()}}
			u := "ws" + strings.TrimPrefix(h.url, "http") + "/api/v1/streaming?stream=user"
			req, _ := http.NewRequest("GET", u, nil)
			set(req, tok)
			for k, v := range req.Header {
				hdr[k] = v
			}
			c, _, err := websocket.DefaultDialer.Dial(req.URL.String(), hdr)
			if err == nil {
				sendJSON(t, c, `{"type":"subscribe","stream":"public"}`)
				open = append(open, c)
			}
			if c2, _, err := websocket.DefaultDialer.Dial(req.URL.String(), hdr); err == nil {
				c2.Close()
			}
		}
	}
	for _, c := range open {
		c.Close()
	}
	opened := len(log.logged("connection opened", nil))
	testenv.Eventually(t, 10*time.Second, func() error {
		if closed := len(log.logged("connection closed", nil)); closed != opened {
			return fmt.Errorf("%d opened, %d closed", opened, closed)
		}
		return nil
	})
	for _, want := range []map[string]any{{"status": 401}, {"status": 429}} {
		if len(log.logged("connection refused", want)) == 0 {
			t.Errorf("no refusal with %v", want)
		}
	}
	if opened == 0 {
		t.Fatal("nothing opened")
	}
	text := log.text()
	for _, tok := range append(tokens, "s3cret") {
		if strings.Contains(text, tok) {
			t.Errorf("token %q in the log:\n%s", tok, text)
		}
	}
	t.Logf("%d connections opened and closed, %d refused", opened, len(log.logged("connection refused", nil)))
}
