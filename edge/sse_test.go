package edge

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/spillway/spillway/shared/channel"
	"github.com/spillway/spillway/shared/testenv"
)

// Every SSE error Mastodon sends, byte-exact bodies, with Mastodon's check
// order.
func TestSSEErrors(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name, method, path string
		hdr                http.Header
		status             int
		body               string
	}{
		{"unknown path before auth", "GET", "/api/v1/streaming/nope", nil, 400, `{"error":"Unknown channel requested"}`},
		{"root", "GET", "/", nil, 400, `{"error":"Unknown channel requested"}`},
		{"websocket path over plain GET", "GET", "/api/v1/streaming", nil, 400, `{"error":"Unknown channel requested"}`},
		{"trailing slash", "GET", "/api/v1/streaming/user/", nil, 400, `{"error":"Unknown channel requested"}`},
		{"upper case", "GET", "/API/V1/STREAMING/USER", nil, 400, `{"error":"Unknown channel requested"}`},
		{"encoded path", "GET", "/api/v1/streaming/%75ser", nil, 400, `{"error":"Unknown channel requested"}`},
		{"POST metrics", "POST", "/metrics", nil, 400, `{"error":"Unknown channel requested"}`},
		{"missing token", "GET", "/api/v1/streaming/user", nil, 401, `{"error":"Missing access token"}`},
		{"unknown token", "GET", "/api/v1/streaming/user?access_token=nope", nil, 401, `{"error":"Invalid access token"}`},
		{"revoked", "GET", "/api/v1/streaming/user?access_token=" + testenv.AliceRevokedToken, nil, 401, `{"error":"Invalid access token"}`},
		{"disabled user", "GET", "/api/v1/streaming/user?access_token=frank-read-token", nil, 401, `{"error":"Invalid access token"}`},
		{"suspended account", "GET", "/api/v1/streaming/user?access_token=grace-read-token", nil, 401, `{"error":"Invalid access token"}`},
		{"app-only token", "GET", "/api/v1/streaming/user?access_token=app-only-token", nil, 401, `{"error":"Invalid access token"}`},
		{"repeated access_token", "GET", "/api/v1/streaming/user?access_token=alice-read-token&access_token=alice-read-token", nil, 401, `{"error":"Invalid access token"}`},
		{"lower-case bearer is part of the token", "GET", "/api/v1/streaming/user", http.Header{"Authorization": {"bearer alice-read-token"}}, 401, `{"error":"Invalid access token"}`},
		{"header beats query", "GET", "/api/v1/streaming/user?access_token=alice-read-token", http.Header{"Authorization": {"Bearer nope"}}, 401, `{"error":"Invalid access token"}`},
		{"write scope only", "GET", "/api/v1/streaming/user?access_token=" + testenv.AliceWriteToken, nil, 401, `{"error":"Access token does not have the required scopes"}`},
		{"statuses scope on notifications", "GET", "/api/v1/streaming/user/notification?access_token=" + testenv.AliceStatusesToken, nil, 401, `{"error":"Access token does not have the required scopes"}`},
		{"notifications scope on public", "GET", "/api/v1/streaming/public?access_token=" + testenv.AliceNotifToken, nil, 401, `{"error":"Access token does not have the required scopes"}`},
		{"missing tag", "GET", "/api/v1/streaming/hashtag?access_token=alice-read-token", nil, 400, `{"error":"Missing tag name parameter"}`},
		{"empty tag", "GET", "/api/v1/streaming/hashtag/local?tag=&access_token=alice-read-token", nil, 400, `{"error":"Missing tag name parameter"}`},
		{"repeated tag", "GET", "/api/v1/streaming/hashtag?tag=a&tag=b&access_token=alice-read-token", nil, 500, `{"error":"An unexpected error occurred"}`},
		{"missing list", "GET", "/api/v1/streaming/list?access_token=alice-read-token", nil, 400, `{"error":"Missing list name parameter"}`},
		{"foreign list", "GET", "/api/v1/streaming/list?list=5002&access_token=alice-read-token", nil, 401, `{"error":"Not authorized to stream this list"}`},
		{"non-numeric list", "GET", "/api/v1/streaming/list?list=abc&access_token=alice-read-token", nil, 401, `{"error":"Not authorized to stream this list"}`},
		{"NULL scopes", "GET", "/api/v1/streaming/user?access_token=" + testenv.NullScopesToken, nil, 500, `{"error":"An unexpected error occurred"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := h.get(tc.method, tc.path, tc.hdr)
			if resp.StatusCode != tc.status || body != tc.body {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, body, tc.status, tc.body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			for _, hdr := range []string{"X-Request-Id", "X-Powered-By", "Access-Control-Allow-Origin"} {
				if resp.Header.Get(hdr) == "" {
					t.Errorf("missing %s", hdr)
				}
			}
			if len(resp.TransferEncoding) == 0 || resp.TransferEncoding[0] != "chunked" {
				t.Errorf("error body not chunked: %v", resp.TransferEncoding)
			}
		})
	}
}

func TestHTTPSurface(t *testing.T) {
	h := newHarness(t)
	t.Run("health", func(t *testing.T) {
		resp, body := h.get("GET", "/api/v1/streaming/health", nil)
		if resp.StatusCode != 200 || body != "OK" || resp.Header.Get("Content-Type") != "text/plain" ||
			resp.Header.Get("Cache-Control") != "private, no-store" {
			t.Fatalf("got %d %q %v", resp.StatusCode, body, resp.Header)
		}
	})
	t.Run("favicon", func(t *testing.T) {
		resp, body := h.get("GET", "/favicon.ico", nil)
		if resp.StatusCode != 404 || body != "" || resp.Header.Get("Content-Type") != "" {
			t.Fatalf("got %d %q %v", resp.StatusCode, body, resp.Header)
		}
	})
	t.Run("options preflight", func(t *testing.T) {
		resp, body := h.get("OPTIONS", "/api/v1/streaming/user", http.Header{"Access-Control-Request-Headers": {"authorization"}})
		if resp.StatusCode != 204 || body != "" ||
			resp.Header.Get("Access-Control-Allow-Methods") != "GET,HEAD,PUT,PATCH,POST,DELETE" ||
			resp.Header.Get("Access-Control-Allow-Headers") != "authorization" ||
			resp.Header.Get("Vary") != "Access-Control-Request-Headers" ||
			resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Fatalf("got %d %v", resp.StatusCode, resp.Header)
		}
	})
	t.Run("POST on a stream path after auth is Express's 404", func(t *testing.T) {
		resp, body := h.get("POST", "/api/v1/streaming/user", http.Header{"Authorization": {"Bearer alice-read-token"}})
		want := "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>Error</title>\n</head>\n<body>\n<pre>Cannot POST /api/v1/streaming/user</pre>\n</body>\n</html>\n"
		if resp.StatusCode != 404 || body != want || resp.ContentLength != 161 ||
			resp.Header.Get("Content-Security-Policy") != "default-src 'none'" {
			t.Fatalf("got %d %d %q", resp.StatusCode, resp.ContentLength, body)
		}
	})
	t.Run("metrics", func(t *testing.T) {
		resp, body := h.get("GET", "/metrics", nil)
		if resp.StatusCode != 200 || !strings.Contains(body, `connected_clients{type="eventsource"} 0`) ||
			!strings.Contains(body, `connected_channels{channel="hashtag:local",type="websocket"} 0`) {
			t.Fatalf("got %d\n%s", resp.StatusCode, body)
		}
	})
}

// Every stream receives what is published on its channels.
func TestSSEStreams(t *testing.T) {
	h := newHarness(t)
	alice := testenv.Alice
	status := `{"id":"1","language":"en","account":{"id":"109000000000000002","username":"bob","acct":"bob"},"mentions":[],"media_attachments":[]}`
	tests := []struct {
		name, path string
		token      string
		ch         channel.Name
		payload    string // data line expected; "" means the payload as published
	}{
		{"user", "/api/v1/streaming/user", "alice-read-token", channel.Home(alice), ""},
		{"user gets notifications", "/api/v1/streaming/user", "alice-read-token", channel.Notifications(alice), ""},
		{"user:notification", "/api/v1/streaming/user/notification", "alice-notifications-token", channel.Notifications(alice), ""},
		{"direct", "/api/v1/streaming/direct", "alice-read-token", channel.Direct(alice), ""},
		{"list", "/api/v1/streaming/list?list=5001", "alice-read-token", channel.List("5001"), ""},
		{"list with leading zero", "/api/v1/streaming/list?list=05001", "alice-read-token", channel.List("05001"), ""},
		{"public", "/api/v1/streaming/public", "alice-read-token", channel.Public(channel.ScopeAll, false), "filtered"},
		{"public:media", "/api/v1/streaming/public?only_media=true", "alice-read-token", channel.Public(channel.ScopeAll, true), "filtered"},
		{"public:local", "/api/v1/streaming/public/local", "alice-read-token", channel.Public(channel.ScopeLocal, false), "filtered"},
		{"public:local:media", "/api/v1/streaming/public/local?only_media=1", "alice-read-token", channel.Public(channel.ScopeLocal, true), "filtered"},
		{"public:remote", "/api/v1/streaming/public/remote", "alice-read-token", channel.Public(channel.ScopeRemote, false), "filtered"},
		{"public:remote:media", "/api/v1/streaming/public/remote?only_media=yes", "alice-read-token", channel.Public(channel.ScopeRemote, true), "filtered"},
		{"only_media=false is public", "/api/v1/streaming/public?only_media=false", "alice-read-token", channel.Public(channel.ScopeAll, false), "filtered"},
		{"hashtag normalised", "/api/v1/streaming/hashtag?tag=Caf%C3%A9", "alice-read-token", channel.Name("timeline:hashtag:cafe"), "filtered"},
		{"hashtag:local", "/api/v1/streaming/hashtag/local?tag=%23Foo-Bar", "alice-read-token", channel.Name("timeline:hashtag:foobar:local"), "filtered"},
		{"token in Sec-WebSocket-Protocol", "/api/v1/streaming/user", "", channel.Home(alice), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c *sseClient
			if tc.token == "" {
				c = h.sseHeader(tc.path, http.Header{"Sec-Websocket-Protocol": {"alice-read-token"}})
			} else {
				c = h.sse(tc.path, tc.token)
			}
			h.publish(tc.ch, `{"event":"update","payload":`+status+`}`)
			name, data := c.event()
			want := status
			if tc.payload == "filtered" {
				want = strings.TrimSuffix(status, "}") + `,"filtered":[]}`
			}
			if name != "update" || data != want {
				t.Fatalf("got %s %s, want update %s", name, data, want)
			}
		})
	}
}

func (h *harness) sseHeader(path string, hdr http.Header) *sseClient {
	h.t.Helper()
	req, _ := http.NewRequest("GET", h.url+path, nil)
	req.Header = hdr
	resp, err := h.client.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { resp.Body.Close() })
	c := &sseClient{t: h.t, resp: resp, r: newReader(resp)}
	if resp.StatusCode != 200 {
		h.t.Fatalf("status %d", resp.StatusCode)
	}
	if l := c.line(); l != ":)\n" {
		h.t.Fatalf("first line %q", l)
	}
	return c
}

// A read:statuses token's user stream omits notifications.
func TestSSEUserStreamWithoutNotificationScope(t *testing.T) {
	h := newHarness(t)
	c := h.sse("/api/v1/streaming/user", testenv.AliceStatusesToken)
	h.publish(channel.Notifications(testenv.Alice), `{"event":"notification","payload":{"id":"9"}}`)
	h.publish(channel.Home(testenv.Alice), `{"event":"delete","payload":"7"}`)
	if name, data := c.event(); name != "delete" || data != "7" {
		t.Fatalf("got %s %s: the notification must not arrive", name, data)
	}
}

// kill on either system channel ends the response with the chunk
// terminator; other connections stay open.
func TestSSEKill(t *testing.T) {
	tests := []struct {
		name string
		ch   channel.Name
	}{
		{"access token channel", channel.AccessToken(1)},
		{"system channel", channel.System(testenv.Alice)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			killed := h.sse("/api/v1/streaming/user", "alice-read-token")
			other := h.sse("/api/v1/streaming/user", "bob-read-token")
			h.publish(tc.ch, `{"event":"other","payload":"x"}`)
			h.publish(tc.ch, `{"event":"kill"}`)
			killed.expectEnd()
			h.publish(channel.Home(testenv.Bob), `{"event":"delete","payload":"1"}`)
			if name, _ := other.event(); name != "delete" {
				t.Fatalf("other connection got %s", name)
			}
		})
	}
}

func TestSSEKillOnlyThatToken(t *testing.T) {
	h := newHarness(t)
	a := h.sse("/api/v1/streaming/user", "alice-read-token")
	b := h.sse("/api/v1/streaming/user", "alice-statuses-token")
	h.publish(channel.AccessToken(2), `{"event":"kill"}`)
	b.expectEnd()
	h.publish(channel.Home(testenv.Alice), `{"event":"delete","payload":"1"}`)
	if name, _ := a.event(); name != "delete" {
		t.Fatalf("got %s", name)
	}
}

// Idle SSE clients hold no goroutine each, and every way a client leaves
// (hang-up, stray bytes then hang-up, reset) still ends its session.
func TestSSEIdleClientsHoldNoGoroutine(t *testing.T) {
	if !idleWithoutGoroutine {
		t.Skip("this build watches each connection with a goroutine")
	}
	h := newHarness(t)
	h.get("GET", "/api/v1/streaming/health", nil)
	base := runtime.NumGoroutine()
	const n = 200
	conns := make([]net.Conn, 0, n)
	for range n {
		c, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(c, "GET /api/v1/streaming/public?access_token=alice-read-token HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	h.waitChannels("eventsource", "public", n)
	if g := runtime.NumGoroutine(); g > base+20 {
		t.Fatalf("%d goroutines for %d idle SSE clients (baseline %d)", g, n, base)
	}
	for i, c := range conns {
		switch i % 3 {
		case 0:
			_ = c.Close()
		case 1:
			_, _ = io.WriteString(c, "stray bytes")
			_ = c.Close()
		case 2:
			_ = c.(*net.TCPConn).SetLinger(0) // reset
			_ = c.Close()
		}
	}
	h.waitChannels("eventsource", "public", 0)
	testenv.Eventually(t, 5*time.Second, func() error {
		if got := h.edge.Subscriptions(); got != 2 {
			return fmt.Errorf("%d NATS subscriptions left, want the 2 system wildcards", got)
		}
		if got := h.edge.conns.Load(); got != 0 {
			return fmt.Errorf("%d connections counted", got)
		}
		return nil
	})
}

// Delivery latency is observed once per event, not once per client.
func TestLatencyObservedOncePerEvent(t *testing.T) {
	h := newHarness(t)
	clients := []*sseClient{
		h.sse("/api/v1/streaming/user", "alice-read-token"),
		h.sse("/api/v1/streaming/user", "alice-read-token"),
		h.sse("/api/v1/streaming/user", "alice-read-token"),
	}
	msg := fmt.Sprintf(`{"event":"delete","payload":"1","queued_at":%d}`, time.Now().UnixMilli())
	h.publish(channel.Home(testenv.Alice), msg)
	for _, c := range clients {
		if name, data := c.event(); name != "delete" || data != "1" {
			t.Fatalf("got %s %q", name, data)
		}
	}
	observations := func() uint64 {
		var m dto.Metric
		if err := h.edge.metrics.latency.Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetHistogram().GetSampleCount()
	}
	// The count is updated right after the fan-out's last write.
	testenv.Eventually(t, 5*time.Second, func() error {
		if observations() == 0 {
			return fmt.Errorf("no latency observation yet")
		}
		return nil
	})
	if got := observations(); got != 1 {
		t.Fatalf("%d latency observations for one event to 3 clients, want 1", got)
	}
}
