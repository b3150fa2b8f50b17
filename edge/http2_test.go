package edge

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/spillway/spillway/shared/channel"
	"github.com/spillway/spillway/shared/testenv"
)

// newTLSHarness is newHarness serving HTTPS with a test certificate; its
// client speaks HTTP/2 and trusts the certificate.
func newTLSHarness(t *testing.T, mods ...func(*Config)) (*harness, *testenv.ServerCert) {
	t.Helper()
	cert := testenv.NewServerCert(t)
	h := newHarness(t, append(mods, func(c *Config) { c.TLS = cert.TLSConfig(t) })...)
	h.url = "https" + strings.TrimPrefix(h.url, "http")
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cert.Pool}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	h.client = &http.Client{Transport: tr}
	h.dialer = &websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: cert.Pool}}
	h.get("GET", "/api/v1/streaming/health", nil)
	tr.CloseIdleConnections() // tests count the connections they make
	return h, cert
}

// end reads the rest of the stream and returns how it ended: nil for a
// complete response, else the client's error (a reset stream).
func (c *sseClient) end() error {
	c.t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, c.r)
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		c.t.Fatal("the stream did not end")
		return nil
	}
}

// A browser's many EventSources share one HTTP/2 connection: eight streams
// over one TLS connection each get every event, with Mastodon's headers as
// HTTP/2 carries them; a stream the client cancels ends its session alone,
// and kill completes the responses it ends.
func TestHTTP2StreamsShareOneConnection(t *testing.T) {
	h, _ := newTLSHarness(t)
	var dials atomic.Int32
	trace := &httptrace.ClientTrace{ConnectStart: func(string, string) { dials.Add(1) }}
	const n = 8
	streams := make([]*sseClient, n)
	for i := range streams {
		req, err := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), "GET", h.url+"/api/v1/streaming/user?access_token=alice-read-token", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := h.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
			t.Fatalf("stream %d: %d over %s", i, resp.StatusCode, resp.Proto)
		}
		for k, want := range map[string]string{
			"Content-Type": "text/event-stream", "Cache-Control": "private, no-store",
			"X-Powered-By": "Express", "Access-Control-Allow-Origin": "*",
		} {
			if got := resp.Header.Get(k); got != want {
				t.Errorf("%s: %q, want %q", k, got, want)
			}
		}
		for _, k := range []string{"Connection", "Keep-Alive", "Transfer-Encoding"} {
			if v, ok := resp.Header[k]; ok {
				t.Errorf("HTTP/2 response carries %s: %q", k, v)
			}
		}
		if resp.Header.Get("X-Request-Id") == "" {
			t.Error("no X-Request-Id")
		}
		streams[i] = &sseClient{t: t, resp: resp, r: bufio.NewReader(resp.Body)}
		if l := streams[i].line(); l != ":)\n" {
			t.Fatalf("stream %d: first line %q", i, l)
		}
	}
	if got := dials.Load(); got != 1 {
		t.Fatalf("%d connections for %d streams, want 1", got, n)
	}
	h.publish(channel.Home(testenv.Alice), `{"event":"delete","payload":"7"}`)
	for i, c := range streams {
		if name, data := c.event(); name != "delete" || data != "7" {
			t.Fatalf("stream %d: got %s %q", i, name, data)
		}
	}

	streams[0].resp.Body.Close() // cancels that stream only
	testenv.Eventually(t, 5*time.Second, func() error {
		if got := h.edge.conns.Load(); got != n-1 {
			return fmt.Errorf("%d sessions, want %d", got, n-1)
		}
		return nil
	})
	h.publish(channel.System(testenv.Alice), `{"event":"kill"}`)
	for i, c := range streams[1:] {
		if err := c.end(); err != nil {
			t.Errorf("stream %d: %v, want a complete response", i+1, err)
		}
	}
	testenv.Eventually(t, 5*time.Second, func() error {
		if got := h.edge.conns.Load(); got != 0 {
			return fmt.Errorf("%d sessions left", got)
		}
		if got := h.edge.Subscriptions(); got != 2 {
			return fmt.Errorf("%d NATS subscriptions, want the 2 system wildcards", got)
		}
		return nil
	})
}

// Shutdown completes HTTP/2 responses as it does HTTP/1.1 ones.
func TestHTTP2GoingAway(t *testing.T) {
	h, _ := newTLSHarness(t)
	c := h.sse("/api/v1/streaming/user", "alice-read-token")
	h.edge.closeSessions(0, nil, nil, reasonShutdown)
	if err := c.end(); err != nil {
		t.Fatalf("%v, want a complete response", err)
	}
}

// Over HTTP/2 the plain responses are net/http's form of Mastodon's, without
// the fields HTTP/2 forbids.
func TestHTTP2PlainResponses(t *testing.T) {
	h, _ := newTLSHarness(t)
	tests := []struct {
		name, method, path string
		status             int
		body, contentType  string
	}{
		{"unknown path", "GET", "/api/v1/streaming/nope", 400, `{"error":"Unknown channel requested"}`, "application/json"},
		{"bad token", "GET", "/api/v1/streaming/user?access_token=nope", 401, `{"error":"Invalid access token"}`, "application/json"},
		{"health", "GET", "/api/v1/streaming/health", 200, "OK", "text/plain"},
		{"HEAD on a stream", "HEAD", "/api/v1/streaming/user?access_token=alice-read-token", 200, "", "text/event-stream"},
		{"WebSocket path", "GET", "/api/v1/streaming?access_token=alice-read-token", 400, `{"error":"Unknown channel requested"}`, "application/json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := h.get(tc.method, tc.path, nil)
			if resp.ProtoMajor != 2 || resp.StatusCode != tc.status || body != tc.body || resp.Header.Get("Content-Type") != tc.contentType {
				t.Fatalf("got %s %d %q %q, want HTTP/2 %d %q %q", resp.Proto, resp.StatusCode, body, resp.Header.Get("Content-Type"), tc.status, tc.body, tc.contentType)
			}
			for _, k := range []string{"Connection", "Keep-Alive"} {
				if v, ok := resp.Header[k]; ok {
					t.Errorf("HTTP/2 response carries %s: %q", k, v)
				}
			}
		})
	}
}

// A client that stops reading an HTTP/2 stream is cut as over HTTP/1.1:
// its queue overflows or a write misses its deadline, the stream is reset
// (not completed) and the session ends, counted as slow.
func TestHTTP2SlowClient(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
	}{
		{"queue overflow", func(c *Config) { c.MaxQueueFrames = 8 }},
		{"write timeout", func(c *Config) {
			c.MaxQueueFrames = 1 << 20
			c.MaxQueueBytes = 1 << 30
			c.WriteTimeout = 300 * time.Millisecond
		}},
	}
	status := strings.Repeat("x", 3500)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, cert := newTLSHarness(t, tc.mod)
			// Windows of 64 KiB: the edge's writes wait for a client
			// that does not read once it holds that much.
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cert.Pool}, ForceAttemptHTTP2: true,
				HTTP2: &http.HTTP2Config{MaxReceiveBufferPerStream: 64 << 10, MaxReceiveBufferPerConnection: 64 << 10}}
			t.Cleanup(tr.CloseIdleConnections)
			h.client = &http.Client{Transport: tr}
			c := h.sse("/api/v1/streaming/user", "alice-read-token")
			slow := h.edge.metrics.slowClients.WithLabelValues("eventsource")
			testenv.Eventually(t, 10*time.Second, func() error {
				if testutil.ToFloat64(slow) == 1 {
					return nil
				}
				for range 20 {
					h.publish(channel.Home(testenv.Alice), `{"event":"delete","payload":"`+status+`"}`)
				}
				return errors.New("not cut yet")
			})
			testenv.Eventually(t, 5*time.Second, func() error {
				if got := h.edge.conns.Load(); got != 0 {
					return fmt.Errorf("%d sessions left", got)
				}
				return nil
			})
			if err := c.end(); err == nil {
				t.Fatal("the stream ended as a complete response, want a reset")
			}
		})
	}
}

// Over TLS, HTTP/1.1 streams are Mastodon's byte for byte, and WebSocket
// (an HTTP/1.1 upgrade) works as over plain TCP; both are watched by a
// goroutine each, since epoll cannot read TLS records.
func TestTLSHTTP1(t *testing.T) {
	h, cert := newTLSHarness(t)
	addr := strings.TrimPrefix(h.url, "https://")
	t.Run("sse", func(t *testing.T) {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: cert.Pool, NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, "GET /api/v1/streaming/user?access_token=alice-read-token HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(conn)
		var head strings.Builder
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("head %q: %v", head.String(), err)
			}
			head.WriteString(l)
			if l == "\r\n" {
				break
			}
		}
		want := "HTTP/1.1 200 OK\r\nX-Powered-By: Express\r\nX-Request-Id: "
		if !strings.HasPrefix(head.String(), want) || !strings.Contains(head.String(), "\r\nTransfer-Encoding: chunked\r\n") {
			t.Fatalf("head %q, want Mastodon's", head.String())
		}
		readExactly := func(want string) {
			t.Helper()
			got := make([]byte, len(want))
			if _, err := io.ReadFull(r, got); err != nil || string(got) != want {
				t.Fatalf("got %q %v, want %q", got, err, want)
			}
		}
		readExactly(string(sseOpen))
		h.waitChannels("eventsource", "user", 1)
		msg := `{"event":"delete","payload":"7"}`
		h.publish(channel.Home(testenv.Alice), msg)
		readExactly(string(decodeEvent([]byte(msg), time.Now()).sseFrame(nil).body))
		h.publish(channel.System(testenv.Alice), `{"event":"kill"}`)
		readExactly(string(sseTerminator))
		if n, err := r.Read(make([]byte, 1)); n != 0 || err == nil {
			t.Fatalf("read %d bytes, %v after the last chunk; want the end", n, err)
		}
	})
	t.Run("websocket", func(t *testing.T) {
		c, resp, err := h.ws("/api/v1/streaming?stream=user&access_token=alice-read-token", nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 101 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		h.waitChannels("websocket", "user", 1)
		h.publish(channel.Home(testenv.Alice), `{"event":"delete","payload":"7"}`)
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, m, err := c.ReadMessage(); err != nil || string(m) != `{"stream":["user"],"event":"delete","payload":"7"}` {
			t.Fatalf("got %s %v", m, err)
		}
		sendJSON(t, c, `{"type":"subscribe","stream":"public:local"}`)
		h.waitChannels("websocket", "public:local", 1)
		h.publish(channel.System(testenv.Alice), `{"event":"kill"}`)
		if _, _, err := c.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseNoStatusReceived) {
			t.Fatalf("got %v, want a close without status", err)
		}
	})
	testenv.Eventually(t, 5*time.Second, func() error {
		if got := h.edge.conns.Load(); got != 0 {
			return fmt.Errorf("%d sessions left", got)
		}
		return nil
	})
}

// The outbox never writes a TLS connection's descriptor directly: frames
// go through crypto/tls.
func TestOutboxTLSNotDirect(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if fd := directFD((&Edge{}).outboxConn(tls.Server(a, &tls.Config{}))); fd != -1 {
		t.Fatalf("directFD = %d for TLS, want -1", fd)
	}
}

// Idle SSE clients over TLS hold no goroutine either (epoll watches the
// socket under TLS), and every way such a client leaves ends its session.
func TestTLSSSEIdleClientsHoldNoGoroutine(t *testing.T) {
	if !idleWithoutGoroutine {
		t.Skip("this build watches each connection with a goroutine")
	}
	h, cert := newTLSHarness(t)
	h.get("GET", "/api/v1/streaming/health", nil)
	h.client.Transport.(*http.Transport).CloseIdleConnections()
	base := runtime.NumGoroutine()
	const n = 100
	conns := make([]*tls.Conn, 0, n)
	for range n {
		c, err := tls.Dial("tcp", strings.TrimPrefix(h.url, "https://"), &tls.Config{RootCAs: cert.Pool, NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(c, "GET /api/v1/streaming/public?access_token=alice-read-token HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	h.waitChannels("eventsource", "public", n)
	testenv.Eventually(t, 5*time.Second, func() error {
		if g := runtime.NumGoroutine(); g > base+20 {
			return fmt.Errorf("%d goroutines for %d idle TLS SSE clients (baseline %d)", g, n, base)
		}
		return nil
	})
	for i, c := range conns {
		switch i % 3 {
		case 0:
			_ = c.Close() // close_notify, then FIN
		case 1:
			_, _ = io.WriteString(c, "stray bytes")
			_ = c.Close()
		case 2:
			_ = c.NetConn().(*net.TCPConn).SetLinger(0) // reset
			_ = c.NetConn().Close()
		}
	}
	h.waitChannels("eventsource", "public", 0)
	testenv.Eventually(t, 5*time.Second, func() error {
		if got := h.edge.conns.Load(); got != 0 {
			return fmt.Errorf("%d connections counted", got)
		}
		return nil
	})
}
