package edge

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/spillway/spillway/edge/jsjson"

	"github.com/spillway/spillway/shared/channel"
	"github.com/spillway/spillway/shared/testenv"
)

// rawUpgrade sends a hand-written upgrade request and returns the raw
// response head (and body).
func rawUpgrade(t *testing.T, h *harness, req string) string {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(conn)
	return string(b)
}

func stripRequestID(s string) string {
	i := strings.Index(s, "X-Request-Id: ")
	if i < 0 {
		return s
	}
	j := strings.Index(s[i:], "\r\n")
	return s[:i] + "X-Request-Id: <uuid>" + s[i+j:]
}

// Upgrade refusals are bare HTTP responses, byte for byte.
func TestWSUpgradeRefusals(t *testing.T) {
	h := newHarness(t)
	const key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	tests := []struct {
		name, req, want string
	}{
		{"missing token",
			"GET /api/v1/streaming HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" + key + "Sec-WebSocket-Version: 13\r\n\r\n",
			"HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 0\r\nX-Request-Id: <uuid>\r\nX-Error-Message: Missing access token\r\n\r\n"},
		{"invalid token on any path",
			"GET /whatever?access_token=nope HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" + key + "Sec-WebSocket-Version: 13\r\n\r\n",
			"HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 0\r\nX-Request-Id: <uuid>\r\nX-Error-Message: Invalid access token\r\n\r\n"},
		{"bad version after auth",
			"GET /api/v1/streaming?access_token=alice-read-token HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" + key + "Sec-WebSocket-Version: 12\r\n\r\n",
			"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/html\r\nContent-Length: 47\r\nSec-WebSocket-Version: 13, 8\r\n\r\nMissing or invalid Sec-WebSocket-Version header"},
		{"bad key",
			"GET /api/v1/streaming?access_token=alice-read-token HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n",
			"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/html\r\nContent-Length: 43\r\n\r\nMissing or invalid Sec-WebSocket-Key header"},
		{"h2c upgrade",
			"GET /api/v1/streaming?access_token=alice-read-token HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n" + key + "Sec-WebSocket-Version: 13\r\n\r\n",
			"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/html\r\nContent-Length: 22\r\n\r\nInvalid Upgrade header"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := stripRequestID(rawUpgrade(t, h, tc.req)); got != tc.want {
				t.Fatalf("got:\n%q\nwant:\n%q", got, tc.want)
			}
		})
	}
}

func TestWSHandshakeEchoesSubprotocol(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		name string
		path string
		hdr  http.Header
		echo string
	}{
		{"token as subprotocol", "/api/v1/streaming", http.Header{"Sec-Websocket-Protocol": {"alice-read-token"}}, "alice-read-token"},
		{"token in header, subprotocol echoed anyway", "/api/v1/streaming", http.Header{"Authorization": {"Bearer alice-read-token"}, "Sec-Websocket-Protocol": {"foo, bar"}}, "foo"},
		{"token in query, no subprotocol", "/api/v1/streaming?access_token=alice-read-token", nil, ""},
		{"write-only token still connects", "/api/v1/streaming?access_token=alice-write-token", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, resp, err := h.ws(tc.path, tc.hdr)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer c.Close()
			if resp.StatusCode != 101 || resp.Header.Get("Sec-Websocket-Protocol") != tc.echo || resp.Header.Get("X-Request-Id") == "" {
				t.Fatalf("got %d %v", resp.StatusCode, resp.Header)
			}
		})
	}
}

func readText(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	mt, b, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if mt != websocket.TextMessage {
		t.Fatalf("message type %d", mt)
	}
	return string(b)
}

func sendJSON(t *testing.T, c *websocket.Conn, v string) {
	t.Helper()
	if err := c.WriteMessage(websocket.TextMessage, []byte(v)); err != nil {
		t.Fatal(err)
	}
}

// Subscribe errors and their exact frames; the socket stays
// usable after each.
func TestWSSubscribeErrors(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name, token, msg, want string
	}{
		{"scope", "alice-profile-token", `{"type":"subscribe","stream":"public:local"}`, `{"error":"Access token does not have the required scopes","status":401}`},
		{"statuses on notifications", "alice-statuses-token", `{"type":"subscribe","stream":"user:notification"}`, `{"error":"Access token does not have the required scopes","status":401}`},
		{"unknown stream", "alice-read-token", `{"type":"subscribe","stream":"nope"}`, `{"error":"Unknown stream type","status":400}`},
		{"unknown stream needs statuses scope first", "alice-notifications-token", `{"type":"subscribe","stream":"nope"}`, `{"error":"Access token does not have the required scopes","status":401}`},
		{"missing tag", "alice-read-token", `{"type":"subscribe","stream":"hashtag"}`, `{"error":"Missing tag name parameter","status":400}`},
		{"empty array tag", "alice-read-token", `{"type":"subscribe","stream":"hashtag","tag":[]}`, `{"error":"Missing tag name parameter","status":400}`},
		{"number tag", "alice-read-token", `{"type":"subscribe","stream":"hashtag","tag":5}`, `{"error":"An unexpected error occurred","status":500}`},
		{"missing list", "alice-read-token", `{"type":"subscribe","stream":"list"}`, `{"error":"Missing list name parameter","status":400}`},
		{"foreign list", "alice-read-token", `{"type":"subscribe","stream":"list","list":"5002"}`, `{"error":"Not authorized to stream this list","status":401}`},
		{"unsubscribe unknown stream", "alice-read-token", `{"type":"unsubscribe","stream":"nope"}`, `{"error":"Error unsubscribing from channel"}`},
		{"stream as array", "alice-read-token", `{"type":"subscribe","stream":["nope","user"]}`, `{"error":"Unknown stream type","status":400}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := h.ws("/api/v1/streaming?access_token="+tc.token, nil)
			if err != nil {
				t.Fatal(err)
			}
			sendJSON(t, c, `not json`)
			sendJSON(t, c, `null`)
			sendJSON(t, c, `{"type":"ping"}`)
			sendJSON(t, c, tc.msg)
			if got := readText(t, c); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestWSStreamsAndLabels(t *testing.T) {
	h := newHarness(t)
	c, _, err := h.ws("/api/v1/streaming?stream=user&access_token=alice-read-token", nil)
	if err != nil {
		t.Fatal(err)
	}
	h.waitChannels("websocket", "user", 1)
	sendJSON(t, c, `{"type":"subscribe","stream":"hashtag","tag":"Café"}`)
	sendJSON(t, c, `{"type":"subscribe","stream":"hashtag","tag":"cafe"}`) // same channel: ignored
	sendJSON(t, c, `{"type":"subscribe","stream":"list","list":5001}`)
	sendJSON(t, c, `{"type":"subscribe","stream":"user:notification"}`)
	h.waitChannels("websocket", "hashtag", 1)
	h.waitChannels("websocket", "list", 1)
	h.waitChannels("websocket", "user:notification", 1)

	status := `{"id":"301","language":"en","account":{"id":"109000000000000002","username":"bob","acct":"bob"},"mentions":[],"media_attachments":[]}`
	h.publish(channel.Hashtag("Café", false), `{"event":"update","payload":`+status+`}`)
	if got, want := readText(t, c), `{"stream":["hashtag","Café"],"event":"update","payload":"{\"id\":\"301\",\"language\":\"en\",\"account\":{\"id\":\"109000000000000002\",\"username\":\"bob\",\"acct\":\"bob\"},\"mentions\":[],\"media_attachments\":[],\"filtered\":[]}"}`; got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
	h.publish(channel.List("5001"), `{"event":"delete","payload":"301"}`)
	if got, want := readText(t, c), `{"stream":["list",5001],"event":"delete","payload":"301"}`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	// user + user:notification deliver a notification twice, once per label.
	h.publish(channel.Notifications(testenv.Alice), `{"event":"notification","payload":{"id":"9"}}`)
	got := []string{readText(t, c), readText(t, c)}
	if !(strings.Contains(got[0], `"stream":["user"]`) && strings.Contains(got[1], `"stream":["user:notification"]`) ||
		strings.Contains(got[1], `"stream":["user"]`) && strings.Contains(got[0], `"stream":["user:notification"]`)) {
		t.Fatalf("got %q", got)
	}
	// Unsubscribe, then prove nothing more arrives on that channel.
	sendJSON(t, c, `{"type":"unsubscribe","stream":"hashtag","tag":"CAFÉ"}`)
	h.waitChannels("websocket", "hashtag", 0)
	h.publish(channel.Hashtag("cafe", false), `{"event":"delete","payload":"1"}`)
	h.publish(channel.Home(testenv.Alice), `{"event":"delete","payload":"2"}`)
	if got, want := readText(t, c), `{"stream":["user"],"event":"delete","payload":"2"}`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestWSBinaryRefused(t *testing.T) {
	h := newHarness(t)
	c, _, err := h.ws("/api/v1/streaming?access_token=alice-read-token", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WriteMessage(websocket.BinaryMessage, []byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err = c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != 1003 || ce.Text != "The mastodon streaming server does not support binary messages" {
		t.Fatalf("got %v", err)
	}
}

func TestWSKillClosesWithoutStatus(t *testing.T) {
	h := newHarness(t)
	c, _, err := h.ws("/api/v1/streaming?stream=user&access_token=alice-read-token", nil)
	if err != nil {
		t.Fatal(err)
	}
	h.waitChannels("websocket", "user", 1)
	h.publish(channel.System(testenv.Alice), `{"event":"filters_changed"}`)
	h.publish(channel.System(testenv.Alice), `{"event":"kill"}`)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err = c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseNoStatusReceived {
		t.Fatalf("got %v, want close 1005", err)
	}
}

func TestWSMissedPongTerminates(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.PingInterval = 300 * time.Millisecond })
	c, _, err := h.ws("/api/v1/streaming?access_token=alice-read-token", nil)
	if err != nil {
		t.Fatal(err)
	}
	pings := 0
	c.SetPingHandler(func(string) error { pings++; return nil }) // never answers
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err = c.ReadMessage()
	// Cut without a close frame: gorilla reports 1006.
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseAbnormalClosure || pings == 0 {
		t.Fatalf("want a cut connection after unanswered pings, got %v (pings %d)", err, pings)
	}
}

// 1,000 sockets × 3 streams hold exactly 3 NATS subscriptions (plus the
// two wildcards that carry every system channel) and, idle, no goroutine;
// every stream subscription goes away when they close.
func TestWSManySocketsShareSubscriptions(t *testing.T) {
	h := newHarness(t)
	h.get("GET", "/api/v1/streaming/health", nil) // the edge is fully up
	base := runtime.NumGoroutine()
	const n = 1000
	conns := make([]*websocket.Conn, 0, n)
	for range n {
		c, _, err := h.ws("/api/v1/streaming?access_token=alice-read-token", nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{"public", "public:local", `hashtag","tag":"go`} {
			sendJSON(t, c, `{"type":"subscribe","stream":"`+s+`"}`)
		}
		conns = append(conns, c)
	}
	h.waitChannels("websocket", "hashtag", n)
	h.waitChannels("websocket", "public", n)
	h.waitChannels("websocket", "public:local", n)
	if idleWithoutGoroutine {
		// Idle sockets are watched by epoll: no goroutine each.
		testenv.Eventually(t, 5*time.Second, func() error {
			if g := runtime.NumGoroutine(); g > base+20 {
				return fmt.Errorf("%d goroutines with %d idle sockets, baseline %d", g, n, base)
			}
			return nil
		})
	}
	if got := h.edge.Subscriptions(); got != 3+2 {
		t.Fatalf("%d NATS subscriptions, want 3 streams + 2 system wildcards", got)
	}
	for _, c := range conns {
		c.Close()
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if got := h.edge.Subscriptions(); got != 2 {
			return fmt.Errorf("%d subscriptions left, want the 2 system wildcards", got)
		}
		if g := runtime.NumGoroutine(); g > base+5 {
			buf := make([]byte, 1<<20)
			return fmt.Errorf("%d goroutines, baseline %d\n%s", g, base, buf[:runtime.Stack(buf, true)])
		}
		return nil
	})
}

func FuzzWSMessage(f *testing.F) {
	for _, s := range []string{
		`{"type":"subscribe","stream":"public"}`, `{"type":"unsubscribe","stream":["hashtag"],"tag":"x"}`,
		`{"type":"subscribe","stream":"list","list":{"a":1}}`, `null`, `[]`, `{"type":5}`, `"x"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, ok := classifyMessage(b)
		if !ok {
			return
		}
		// Labels are built from parameters as received; they must be valid
		// JSON whatever the client sent.
		for _, p := range []*jsjson.Value{m.tag, m.list} {
			if p != nil && !json.Valid(p.AppendJSON(nil)) {
				t.Fatalf("invalid JSON from %q", b)
			}
		}
	})
}

// Client control frames: a ping is answered with a pong carrying the same
// data, a close is echoed with its code.
func TestWSClientControlFrames(t *testing.T) {
	h := newHarness(t)
	c, _, err := h.ws("/api/v1/streaming?access_token=alice-read-token", nil)
	if err != nil {
		t.Fatal(err)
	}
	pong := make(chan string, 1)
	c.SetPongHandler(func(d string) error { pong <- d; return nil })
	if err := c.WriteControl(websocket.PingMessage, []byte("hi"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	go func() { _, _, _ = c.ReadMessage() }()
	select {
	case d := <-pong:
		if d != "hi" {
			t.Fatalf("pong %q", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no pong")
	}
}

func TestWSCloseEchoed(t *testing.T) {
	h := newHarness(t)
	c, _, err := h.ws("/api/v1/streaming?access_token=alice-read-token", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4000, "bye")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err = c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != 4000 {
		t.Fatalf("got %v, want the close code echoed", err)
	}
}

// Frames that break RFC 6455 end the socket with the code the ws library
// uses; the raw bytes go under gorilla's client, which would not send them.
func TestWSProtocolViolations(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		name  string
		frame []byte
		code  int
	}{
		{"unmasked", []byte{0x81, 2, 'h', 'i'}, 1002},
		{"reserved bit", clientFrame(0xC1, []byte("hi")), 1002},
		{"text not UTF-8", clientFrame(0x81, []byte("\xff")), 1007},
		{"continuation first", clientFrame(0x80, []byte("x")), 1002},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := h.ws("/api/v1/streaming?access_token=alice-read-token", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.NetConn().Write(tc.frame); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, _, err = c.ReadMessage()
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != tc.code {
				t.Fatalf("got %v, want close %d", err, tc.code)
			}
		})
	}
}

// An oversized client message ends that socket only (close 1009).
func TestWSOversizedMessage(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxMessageSize = 1024 })
	other, _, err := h.ws("/api/v1/streaming?stream=user&access_token=bob-read-token", nil)
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := h.ws("/api/v1/streaming?access_token=alice-read-token", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte(strings.Repeat("x", 4096))); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := c.ReadMessage(); err == nil {
		t.Fatal("socket still open after an oversized message")
	}
	h.waitChannels("websocket", "user", 1)
	h.publish(channel.Home(testenv.Bob), `{"event":"delete","payload":"1"}`)
	if got := readText(t, other); got != `{"stream":["user"],"event":"delete","payload":"1"}` {
		t.Fatalf("other socket got %s", got)
	}
}

// Mastodon's metrics move as Mastodon's do.
func TestMastodonMetrics(t *testing.T) {
	h := newHarness(t)
	c, _, err := h.ws("/api/v1/streaming?stream=user&access_token=alice-read-token", nil)
	if err != nil {
		t.Fatal(err)
	}
	h.waitChannels("websocket", "user", 1)
	s := h.sse("/api/v1/streaming/user", "alice-read-token")
	h.publish(channel.Home(testenv.Alice), `{"event":"delete","payload":"1"}`)
	readText(t, c)
	s.event()
	// Counters move after the writes, so a client can be faster than them.
	testenv.Eventually(t, 5*time.Second, func() error {
		_, body := h.get("GET", "/metrics", nil)
		if !strings.Contains(body, `messages_sent_total{type="eventsource"} 1`+"\n") || !strings.Contains(body, `messages_sent_total{type="websocket"} 1`+"\n") {
			return errors.New("messages_sent_total not counted yet")
		}
		return nil
	})
	_, body := h.get("GET", "/metrics", nil)
	for _, want := range []string{
		`connected_clients{type="websocket"} 1`,
		`connected_clients{type="eventsource"} 1`,
		`connected_channels{channel="system",type="websocket"} 2`,
		`connected_channels{channel="system",type="eventsource"} 2`,
		`connected_channels{channel="user",type="eventsource"} 1`,
		`messages_sent_total{type="websocket"} 1`,
		`messages_sent_total{type="eventsource"} 1`,
		`redis_messages_received_total 1`,
		"# HELP connected_clients The number of clients connected to the streaming server",
		"# HELP pg_pool_total_connections The total number of clients existing within the pool",
		`spillway_events_received_total{kind="user"} 1`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
}
