package edge

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"

	"github.com/spillway/spillway/edge/store"
	"github.com/spillway/spillway/shared/bus"
	"github.com/spillway/spillway/shared/channel"
	"github.com/spillway/spillway/shared/readiness"
	"github.com/spillway/spillway/shared/testenv"
)

// natsProcess is a real nats-server on a port of its own, which a test
// stops and starts again on that port, as an operator restarting it would.
type natsProcess struct {
	t    *testing.T
	port string
	ns   *bus.Server
}

func startNATSProcess(t *testing.T) *natsProcess {
	t.Helper()
	n := &natsProcess{t: t}
	n.start("127.0.0.1:-1")
	_, n.port, _ = net.SplitHostPort(n.ns.Addr().String())
	t.Cleanup(n.stop)
	return n
}

func (n *natsProcess) start(listen string) {
	n.t.Helper()
	ns, err := bus.StartServer(bus.ServerConfig{Listen: listen})
	if err != nil {
		n.t.Fatal(err)
	}
	n.ns = ns
}

func (n *natsProcess) url() string { return "nats://127.0.0.1:" + n.port }

func (n *natsProcess) stop() {
	if n.ns != nil {
		n.ns.Shutdown()
		n.ns = nil
	}
}

func (n *natsProcess) restart() { n.start("127.0.0.1:" + n.port) }

// publisher is the broker's side: an in-process connection with the
// rights to publish events, to the server running now.
func (n *natsProcess) publisher() *nats.Conn {
	n.t.Helper()
	nc, err := n.ns.Connect("broker", nil)
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(nc.Close)
	return nc
}

// connect opens a client connection with Spillway's reconnect policy, as
// an edge does.
func (n *natsProcess) connect(name string) *nats.Conn {
	n.t.Helper()
	nc, err := bus.Connect(bus.ClientConfig{URL: n.url(), Name: name})
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(nc.Close)
	return nc
}

// readyAnswer is /readyz decoded.
type readyAnswer struct {
	code         int
	Ready        bool `json:"ready"`
	Draining     bool `json:"draining"`
	Shedding     bool `json:"shedding"`
	Dependencies map[string]struct {
		State   string    `json:"state"`
		Since   time.Time `json:"since"`
		Address string    `json:"address"`
		Error   string    `json:"error"`
	} `json:"dependencies"`
}

func (h *harness) readyz() readyAnswer {
	h.t.Helper()
	resp, body := h.get("GET", "/readyz", nil)
	var a readyAnswer
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		h.t.Fatalf("/readyz %d: %v: %q", resp.StatusCode, err, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		h.t.Fatalf("/readyz Content-Type %q", ct)
	}
	a.code = resp.StatusCode
	if (a.code == http.StatusOK) != a.Ready {
		h.t.Fatalf("/readyz %d with ready=%v", a.code, a.Ready)
	}
	return a
}

// awaitReady polls /readyz until it reports ready (or not) with the given
// dependency states, and returns when that was first seen.
func (h *harness) awaitReady(ready bool, states map[string]string) readyAnswer {
	h.t.Helper()
	var a readyAnswer
	testenv.Eventually(h.t, 20*time.Second, func() error {
		a = h.readyz()
		if a.Ready != ready {
			return fmt.Errorf("ready=%v: %+v", a.Ready, a)
		}
		for name, want := range states {
			if got := a.Dependencies[name].State; got != want {
				return fmt.Errorf("%s is %q, want %q", name, got, want)
			}
		}
		return nil
	})
	return a
}

// An edge's NATS server stops for longer than NATSShedAfter, then comes
// back: /readyz follows each change, the edge closes its clients spread
// over ShutdownGrace and refuses new ones while NATS is down, and serves
// again once it is back.
func TestNATSLossShedsClients(t *testing.T) {
	t.Parallel()
	const (
		shedAfter = 1 * time.Second
		window    = 1 * time.Second
		clients   = 3 // of each transport
	)
	n := startNATSProcess(t)
	nc := n.connect("edge")
	h := newHarness(t, func(c *Config) {
		c.NATS = nc
		c.NATSShedAfter = shedAfter
		c.ShutdownGrace = window
	})
	h.awaitReady(true, map[string]string{"nats": "up", "postgres": "up"})
	if resp, body := h.get("GET", "/api/v1/streaming/health", nil); resp.StatusCode != 200 || body != "OK" {
		t.Fatalf("health %d %q", resp.StatusCode, body)
	}

	type closed struct {
		at   time.Time
		what string
	}
	ends := make(chan closed, 2*clients)
	for range clients {
		c := h.sse("/api/v1/streaming/user", testenv.AliceReadToken)
		go func() {
			_, _ = io.Copy(io.Discard, c.r) // until the edge ends the response
			ends <- closed{time.Now(), "sse"}
		}()
		ws, _, err := h.ws("/api/v1/streaming?stream=user", http.Header{"Sec-Websocket-Protocol": {testenv.AliceReadToken}})
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			var err error
			for err == nil {
				_, _, err = ws.ReadMessage()
			}
			what := "ws " + err.Error()
			if websocket.IsCloseError(err, websocket.CloseGoingAway) {
				what = "ws 1001"
			}
			ends <- closed{time.Now(), what}
		}()
	}
	h.waitChannels("websocket", "user", clients)

	stopped := time.Now()
	n.stop()
	down := h.awaitReady(false, map[string]string{"nats": "down", "postgres": "up"})
	t.Logf("readiness reported NATS down %v after the server stopped", time.Since(stopped).Round(time.Millisecond))
	if since := down.Dependencies["nats"].Since; since.Before(stopped.Add(-time.Second)) || down.Dependencies["nats"].Error == "" {
		t.Errorf("nats down since %v (stopped at %v), error %q", since, stopped, down.Dependencies["nats"].Error)
	}
	if resp, _ := h.get("GET", "/api/v1/streaming/health", nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("health %d while NATS is down", resp.StatusCode)
	}

	var first, last time.Time
	for i := range 2 * clients {
		select {
		case c := <-ends:
			if c.what != "sse" && c.what != "ws 1001" {
				t.Errorf("client %d ended with %s, want a proper close", i, c.what)
			}
			if first.IsZero() {
				first = c.at
			}
			last = c.at
		case <-time.After(shedAfter + window + 15*time.Second):
			t.Fatalf("only %d of %d clients were closed", i, 2*clients)
		}
	}
	if wait := first.Sub(stopped); wait < shedAfter {
		t.Errorf("first client closed %v after NATS stopped, before NATSShedAfter (%v)", wait, shedAfter)
	}
	// Closes are paced window/n apart; the spread is a lower bound the
	// edge guarantees, however slow the machine.
	if spread := last.Sub(first); spread < window/3 {
		t.Errorf("clients closed within %v, want them spread over about %v", spread, window)
	}
	t.Logf("%d clients shed: first %v after NATS stopped, all within %v",
		2*clients, first.Sub(stopped).Round(time.Millisecond), last.Sub(first).Round(time.Millisecond))

	if a := h.readyz(); !a.Shedding || a.Ready {
		t.Errorf("readyz while shedding: %+v", a)
	}
	resp, body := h.get("GET", "/api/v1/streaming/user", http.Header{"Authorization": {"Bearer " + testenv.AliceReadToken}})
	if resp.StatusCode != http.StatusServiceUnavailable || body != `{"error":"Streaming temporarily unavailable"}` {
		t.Errorf("new SSE client while shedding: %d %q", resp.StatusCode, body)
	}
	if _, resp, err := h.ws("/api/v1/streaming?stream=user", http.Header{"Sec-Websocket-Protocol": {testenv.AliceReadToken}}); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("new WebSocket client while shedding: %v %v", resp, err)
	}

	restarted := time.Now()
	n.restart()
	h.awaitReady(true, map[string]string{"nats": "up", "postgres": "up"})
	t.Logf("readiness back %v after the NATS server restarted", time.Since(restarted).Round(time.Millisecond))
	testenv.Eventually(t, 10*time.Second, func() error {
		if h.readyz().Shedding {
			return errors.New("still shedding")
		}
		return nil
	})

	// Served again, with events.
	pub := n.publisher()
	c := h.sse("/api/v1/streaming/user", testenv.AliceReadToken)
	var subj channel.Subjects
	if err := pub.Publish(subj.Of(channel.Home(testenv.Alice)), []byte(`{"event":"delete","payload":"42"}`)); err != nil {
		t.Fatal(err)
	}
	if name, data := c.event(); name != "delete" || data != "42" {
		t.Errorf("after NATS came back: %s %s", name, data)
	}
}

// A short NATS outage does not shed anybody.
func TestShortNATSLossKeepsClients(t *testing.T) {
	t.Parallel()
	n := startNATSProcess(t)
	nc := n.connect("edge")
	h := newHarness(t, func(c *Config) {
		c.NATS = nc
		c.NATSShedAfter = time.Hour
	})
	h.awaitReady(true, map[string]string{"nats": "up"})
	c := h.sse("/api/v1/streaming/user", testenv.AliceReadToken)
	n.stop()
	h.awaitReady(false, map[string]string{"nats": "down"})
	n.restart()
	h.awaitReady(true, map[string]string{"nats": "up"})
	// One round trip on the edge's connection: the server has its
	// re-sent subscriptions before anything is published.
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	pub := n.publisher()
	var subj channel.Subjects
	if err := pub.Publish(subj.Of(channel.Home(testenv.Alice)), []byte(`{"event":"delete","payload":"7"}`)); err != nil {
		t.Fatal(err)
	}
	if name, data := c.event(); name != "delete" || data != "7" {
		t.Errorf("kept client got %s %s", name, data)
	}
}

// postgresBehind returns a pool whose connections go through a proxy to the
// test's Postgres, so the test can make Postgres unreachable for this edge.
func postgresBehind(t *testing.T) (*pgxpool.Pool, *testenv.Proxy) {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	target := net.JoinHostPort(cfg.ConnConfig.Host, fmt.Sprint(cfg.ConnConfig.Port))
	proxy := testenv.NewProxy(t, target)
	host, port, _ := net.SplitHostPort(proxy.Addr())
	cfg.ConnConfig.Host = host
	fmt.Sscan(port, &cfg.ConnConfig.Port)
	cfg.ConnConfig.ConnectTimeout = 2 * time.Second
	cfg.ConnConfig.Fallbacks = nil
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool, proxy
}

// jsonLog collects JSON log lines.
type jsonLog struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *jsonLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// has reports whether a line has every given key and value.
func (l *jsonLog) has(want map[string]string) error {
	l.mu.Lock()
	text := l.buf.String()
	l.mu.Unlock()
	for line := range strings.SplitSeq(text, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		ok := true
		for k, v := range want {
			ok = ok && fmt.Sprint(m[k]) == v
		}
		if ok {
			return nil
		}
	}
	return fmt.Errorf("no line with %v in:\n%s", want, text)
}

// Postgres becomes unreachable and comes back: /readyz and the log follow,
// from the queries clients cause and from the edge's pings.
func TestPostgresLossIsReported(t *testing.T) {
	t.Parallel()
	pool, proxy := postgresBehind(t)
	var log jsonLog
	logger := slog.New(slog.NewJSONHandler(&log, nil))
	set := readiness.NewSet(logger)
	pg := set.Add("postgres", proxy.Addr())
	h := newHarness(t, func(c *Config) {
		c.Store = store.NewObserved(pool, pg.Observe)
		c.Readiness = set
		c.Logger = logger
		c.PostgresPing = 200 * time.Millisecond
	})
	h.awaitReady(true, map[string]string{"nats": "up", "postgres": "up"})
	testenv.Eventually(t, 5*time.Second, func() error {
		return log.has(map[string]string{"level": "INFO", "msg": "postgres connected", "address": proxy.Addr()})
	})

	cut := time.Now()
	proxy.Cut()
	a := h.awaitReady(false, map[string]string{"nats": "up", "postgres": "down"})
	t.Logf("readiness reported Postgres down %v after it became unreachable", time.Since(cut).Round(time.Millisecond))
	if a.Dependencies["postgres"].Error == "" || a.Dependencies["postgres"].Address != proxy.Addr() {
		t.Errorf("postgres entry %+v", a.Dependencies["postgres"])
	}
	testenv.Eventually(t, 5*time.Second, func() error {
		return log.has(map[string]string{"level": "WARN", "msg": "postgres lost", "dependency": "postgres", "address": proxy.Addr()})
	})
	// Mastodon's answer while its database is away.
	if resp, body := h.get("GET", "/api/v1/streaming/user", http.Header{"Authorization": {"Bearer " + testenv.BobReadToken}}); resp.StatusCode != 500 {
		t.Errorf("client while Postgres is down: %d %s", resp.StatusCode, body)
	}

	restored := time.Now()
	proxy.Restore()
	h.awaitReady(true, map[string]string{"postgres": "up"})
	t.Logf("readiness back %v after Postgres became reachable", time.Since(restored).Round(time.Millisecond))
	testenv.Eventually(t, 5*time.Second, func() error {
		return log.has(map[string]string{"level": "INFO", "msg": "postgres back", "address": proxy.Addr()})
	})
	h.sse("/api/v1/streaming/user", testenv.BobReadToken)
}

// Probing /readyz sends nothing to Postgres: its state comes from queries
// already made and from pings on the edge's own schedule.
func TestReadyzRunsNoQuery(t *testing.T) {
	t.Parallel()
	pool, proxy := postgresBehind(t)
	h := newHarness(t, func(c *Config) {
		c.Store = store.New(pool)
		c.PostgresPing = time.Hour
	})
	h.awaitReady(true, map[string]string{"postgres": "up"})
	before := proxy.Sent()
	for range 20 {
		h.readyz()
	}
	if sent := proxy.Sent() - before; sent != 0 {
		t.Errorf("20 probes sent %d bytes to Postgres", sent)
	}
}

// While draining, /readyz says so and reports 503; health keeps
// Mastodon's plain-text answer.
func TestReadyzWhileDraining(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.awaitReady(true, nil)
	h.edge.draining.Store(true)
	defer h.edge.draining.Store(false)
	if a := h.readyz(); a.code != http.StatusServiceUnavailable || !a.Draining {
		t.Errorf("draining: %+v", a)
	}
	if resp, body := h.get("GET", "/api/v1/streaming/health", nil); resp.StatusCode != 503 || resp.Header.Get("Content-Type") != "text/plain" || body != "Shutting down" {
		t.Errorf("health while draining: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
}
