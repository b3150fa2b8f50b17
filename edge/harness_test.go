package edge

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/spillway/spillway/edge/store"
	"github.com/spillway/spillway/shared/channel"
	"github.com/spillway/spillway/shared/testenv"
)

// harness runs a real edge against real Postgres (a fresh schema with the
// fixtures) and in-process NATS; tests publish on NATS as the broker would.
type harness struct {
	t    *testing.T
	edge *Edge
	url  string
	// client and dialer reach the edge (newTLSHarness: over TLS, the
	// client speaking HTTP/2).
	client *http.Client
	dialer *websocket.Dialer
	nc     *nats.Conn
	subj   channel.Subjects
	pool   *pgxpool.Pool
	stop   func() // shuts the edge down and waits for Run; idempotent
}

func newHarness(t *testing.T, mods ...func(*Config)) *harness {
	t.Helper()
	pool := testenv.Postgres(t)
	_, nc := testenv.NATS(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	level := slog.LevelError
	if os.Getenv("SPILLWAY_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	cfg := Config{
		Listener:      ln,
		NATS:          nc,
		Store:         store.New(pool),
		Logger:        slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
		ShutdownGrace: 100 * time.Millisecond,
	}
	for _, m := range mods {
		m(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	stop := sync.OnceFunc(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("edge.Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("edge.Run did not return after cancel")
		}
	})
	t.Cleanup(stop)
	h := &harness{t: t, edge: e, url: "http://" + ln.Addr().String(), nc: nc, pool: pool, stop: stop,
		client: http.DefaultClient, dialer: websocket.DefaultDialer}
	// Run serves only once its system subscriptions are in place: the
	// first answer means the edge is fully up (newTLSHarness asks once its
	// client trusts the certificate).
	if cfg.TLS == nil {
		h.get("GET", "/api/v1/streaming/health", nil)
	}
	return h
}

// publish puts a Redis-shaped message on a channel, as the broker does.
func (h *harness) publish(name channel.Name, msg string) {
	h.t.Helper()
	if err := h.nc.Publish(h.subj.Of(name), []byte(msg)); err != nil {
		h.t.Fatal(err)
	}
	if err := h.nc.Flush(); err != nil {
		h.t.Fatal(err)
	}
}

// sseClient is an open SSE stream.
type sseClient struct {
	t    *testing.T
	resp *http.Response
	r    *bufio.Reader
}

// get performs a plain request and returns the response with its body read.
func (h *harness) get(method, path string, hdr http.Header) (*http.Response, string) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.url+path, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := h.client.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// sse opens a stream and waits for Mastodon's ":)" opening, after which
// the edge has subscribed every channel.
func (h *harness) sse(path, token string) *sseClient {
	h.t.Helper()
	req, err := http.NewRequest("GET", h.url+path, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	c := &sseClient{t: h.t, resp: resp, r: bufio.NewReader(resp.Body)}
	h.t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		h.t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	if line := c.line(); line != ":)\n" {
		h.t.Fatalf("first line %q, want \":)\\n\"", line)
	}
	return c
}

func (c *sseClient) line() string {
	c.t.Helper()
	type result struct {
		s   string
		err error
	}
	ch := make(chan result, 1)
	go func() { s, err := c.r.ReadString('\n'); ch <- result{s, err} }()
	select {
	case r := <-ch:
		if r.err != nil {
			return "EOF:" + r.s
		}
		return r.s
	case <-time.After(5 * time.Second):
		c.t.Fatal("timed out waiting for an SSE line")
		return ""
	}
}

// event reads the next "event:/data:" pair, skipping heartbeats.
func (c *sseClient) event() (name, data string) {
	c.t.Helper()
	for {
		l := c.line()
		switch {
		case strings.HasPrefix(l, "EOF:"):
			c.t.Fatalf("stream ended: %q", l)
		case strings.HasPrefix(l, "event: "):
			name = strings.TrimSuffix(strings.TrimPrefix(l, "event: "), "\n")
			d := c.line()
			if !strings.HasPrefix(d, "data: ") {
				c.t.Fatalf("data line %q", d)
			}
			if blank := c.line(); blank != "\n" {
				c.t.Fatalf("after data: %q", blank)
			}
			return name, strings.TrimSuffix(strings.TrimPrefix(d, "data: "), "\n")
		}
	}
}

// expectEnd reads until the stream ends, failing on any event before the
// end.
func (c *sseClient) expectEnd() {
	c.t.Helper()
	for {
		l := c.line()
		if strings.HasPrefix(l, "EOF:") {
			return
		}
		if strings.HasPrefix(l, "event: ") {
			c.t.Fatalf("unexpected event %q before end of stream", l)
		}
	}
}

// ws dials the WebSocket endpoint.
func (h *harness) ws(path string, hdr http.Header) (*websocket.Conn, *http.Response, error) {
	h.t.Helper()
	c, resp, err := h.dialer.Dial("ws"+strings.TrimPrefix(h.url, "http")+path, hdr)
	if c != nil {
		h.t.Cleanup(func() { c.Close() })
	}
	return c, resp, err
}

// waitChannels waits until connected_channels{type,channel} reaches n,
// which happens once a subscription is in place.
func (h *harness) waitChannels(typ, ch string, n float64) {
	h.t.Helper()
	testenv.Eventually(h.t, 5*time.Second, func() error {
		if got := testutil.ToFloat64(h.edge.metrics.connectedChannels.WithLabelValues(typ, ch)); got != n {
			return &waitErr{typ + "/" + ch, got, n}
		}
		return nil
	})
}

type waitErr struct {
	what      string
	got, want float64
}

func (e *waitErr) Error() string {
	return e.what + ": have " + ftoa(e.got) + ", want " + ftoa(e.want)
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func newReader(resp *http.Response) *bufio.Reader { return bufio.NewReader(resp.Body) }
