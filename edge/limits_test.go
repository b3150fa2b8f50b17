package edge

import (
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/spillway/spillway/shared/channel"
	"github.com/spillway/spillway/shared/testenv"
)

func TestLimitKey(t *testing.T) {
	tests := []struct{ in, want string }{
		{"203.0.113.7", "203.0.113.7"},
		{"::ffff:203.0.113.7", "203.0.113.7"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::"},
		{"2001:db8:1:2::ffff", "2001:db8:1:2::"},
		{"fe80::1%eth0", "fe80::"},
		{"::1", "::"},
	}
	for _, tc := range tests {
		if got := limitKey(ip(tc.in)); got != ip(tc.want) {
			t.Errorf("limitKey(%s) = %v, want %s", tc.in, got, tc.want)
		}
	}
	if limitKey(netip.Addr{}).IsValid() {
		t.Error("an unknown address got a key")
	}
}

func TestLimitsValidate(t *testing.T) {
	for _, l := range []Limits{{ConnectionsPerIP: -1}, {ConnectRate: -1}, {ConnectRate: 1}, {SubscribeRate: 2, SubscribeBurst: 0}, {StreamsPerSocket: -3}} {
		if l.validate() == nil {
			t.Errorf("%+v accepted", l)
		}
	}
	for _, l := range []Limits{{}, DefaultLimits(), {ConnectRate: 0.1, ConnectBurst: 1}} {
		if err := l.validate(); err != nil {
			t.Errorf("%+v: %v", l, err)
		}
	}
}

// take refuses exactly beyond each bound, per address and per account,
// counts nothing it refused, and give empties the maps.
func TestClientLimitsCount(t *testing.T) {
	l := newClientLimits(Limits{ConnectionsPerIP: 2, ConnectionsPerAccount: 3})
	a, b := ip("192.0.2.1"), ip("192.0.2.2")
	steps := []struct {
		key     netip.Addr
		account int64
		want    string
	}{
		{a, 1, ""}, {a, 1, ""}, {a, 2, refusedPerIP}, // a is full, whatever the account
		{b, 1, ""}, {b, 1, refusedPerAccount}, // account 1 is full
		{b, 2, ""},
		{netip.Addr{}, 1, refusedPerAccount}, // no address: only the account counts
		{netip.Addr{}, 0, ""},                // neither
		{b, 0, refusedPerIP},
	}
	taken := 0
	for i, s := range steps {
		reason, aerr := l.take(s.key, s.account)
		if reason != s.want || (aerr == nil) != (s.want == "") {
			t.Fatalf("step %d: %q %v, want %q", i, reason, aerr, s.want)
		}
		if aerr == nil {
			taken++
			defer l.give(s.key, s.account)
		}
	}
	if ip, acc, _ := l.sizes(); ip != 2 || acc != 2 {
		t.Fatalf("%d addresses, %d accounts", ip, acc)
	}
	l.give(a, 1)
	if reason, _ := l.take(a, 2); reason != "" {
		t.Fatalf("after give: %q", reason)
	}
	l.give(a, 2)
	t.Cleanup(func() {
		if ip, acc, _ := l.sizes(); ip != 0 || acc != 0 {
			t.Errorf("after giving everything back: %d addresses, %d accounts", ip, acc)
		}
	})
}

// allowNew lets a burst through, then one request per 1/rate, per
// address.
func TestConnectPace(t *testing.T) {
	l := newClientLimits(Limits{ConnectRate: 2, ConnectBurst: 3})
	a, b := ip("192.0.2.1"), ip("192.0.2.2")
	now := time.Unix(1000, 0)
	for i := range 3 {
		if !l.allowNew(a, now) {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	if l.allowNew(a, now) {
		t.Fatal("beyond the burst allowed")
	}
	if !l.allowNew(b, now) {
		t.Fatal("another address refused")
	}
	if l.allowNew(a, now.Add(400*time.Millisecond)) {
		t.Fatal("allowed before a token was back")
	}
	if !l.allowNew(a, now.Add(500*time.Millisecond)) {
		t.Fatal("refused once a token was back")
	}
	if !l.allowNew(netip.Addr{}, now) || !newClientLimits(Limits{}).allowNew(a, now) {
		t.Fatal("unknown address or no pace refused")
	}
}

// A flood of distinct addresses holds at most maxPaced entries, and the
// entries go once their buckets are full again.
func TestPaceTableBounded(t *testing.T) {
	l := newClientLimits(Limits{ConnectRate: 1, ConnectBurst: 5})
	now := time.Unix(1000, 0)
	for i := range 3 * maxPaced {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if !l.allowNew(a, now.Add(time.Duration(i)*time.Microsecond)) {
			t.Fatalf("first request of %v refused", a)
		}
	}
	if _, _, n := l.sizes(); n != maxPaced {
		t.Fatalf("%d entries after %d addresses, want the cap %d", n, 3*maxPaced, maxPaced)
	}
	// 5 s refill the buckets; one request later than sweepEvery sweeps.
	l.allowNew(ip("192.0.2.1"), now.Add(sweepEvery+5*time.Second))
	if _, _, n := l.sizes(); n != 1 {
		t.Fatalf("%d entries after the sweep, want 1", n)
	}
}

// sseAs opens an SSE stream as the client at xff (through the loopback
// proxy the default TRUSTED_PROXY_IP trusts) and returns the response;
// the body is closed at the end of the test.
func (h *harness) sseAs(xff, token string) *http.Response {
	h.t.Helper()
	req, _ := http.NewRequest("GET", h.url+"/api/v1/streaming/public/local", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-Forwarded-For", xff)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// expectRefusal checks an SSE refusal: status and Mastodon's JSON body.
func expectRefusal(t *testing.T, resp *http.Response, status int, msg string) {
	t.Helper()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status || string(b) != `{"error":"`+msg+`"}` || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("got %d %s %q, want %d %s", resp.StatusCode, resp.Header.Get("Content-Type"), b, status, msg)
	}
}

// wsAs dials the WebSocket endpoint as the client at xff and returns the
// handshake's response and error.
func (h *harness) wsAs(xff, token string) (*websocket.Conn, *http.Response, error) {
	h.t.Helper()
	return h.ws("/api/v1/streaming?stream=public:local&access_token="+token, http.Header{"X-Forwarded-For": {xff}})
}

// expectUpgradeRefusal checks a refusal as Mastodon refuses upgrades.
func expectUpgradeRefusal(t *testing.T, resp *http.Response, err error, status int, msg string) {
	t.Helper()
	if err == nil || resp == nil {
		t.Fatalf("upgrade not refused: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status || resp.Header.Get("X-Error-Message") != msg || len(b) != 0 || resp.Header.Get("X-Request-Id") == "" {
		t.Fatalf("got %d %v %q, want %d with X-Error-Message %q", resp.StatusCode, resp.Header, b, status, msg)
	}
}

func (h *harness) refused(reason string) float64 {
	return testutil.ToFloat64(h.edge.metrics.connectionsRefused.WithLabelValues(reason))
}

func (h *harness) expectRefused(reason string, n float64) {
	h.t.Helper()
	if got := h.refused(reason); got != n {
		h.t.Fatalf("spillway_connections_refused_total{reason=%q} = %v, want %v", reason, got, n)
	}
}

// Connections per address: the bound holds on both transports, for an
// IPv6 client's whole /64 too, other addresses are unaffected, and a
// connection that ends gives its place back.
func TestConnectionsPerIPLimit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.Limits.ConnectionsPerIP = 2 })
	const a, b = "203.0.113.7", "198.51.100.8"
	first := h.sseAs(a, testenv.AliceReadToken)
	ws, _, err := h.wsAs(a, testenv.BobReadToken)
	if first.StatusCode != 200 || err != nil {
		t.Fatalf("within the limit: %d, %v", first.StatusCode, err)
	}
	expectRefusal(t, h.sseAs(a, testenv.AliceReadToken), 429, "Too many connections from this address")
	_, resp, err := h.wsAs(a, testenv.AliceReadToken)
	expectUpgradeRefusal(t, resp, err, 429, "Too many connections from this address")
	h.expectRefused(refusedPerIP, 2)
	if resp := h.sseAs(b, testenv.AliceReadToken); resp.StatusCode != 200 {
		t.Fatalf("another address: %d", resp.StatusCode)
	}

	h.sseAs("2001:db8:1:2::1", testenv.AliceReadToken)
	h.sseAs("2001:db8:1:2::2", testenv.AliceReadToken)
	expectRefusal(t, h.sseAs("2001:db8:1:2:ffff::3", testenv.AliceReadToken), 429, "Too many connections from this address")
	if resp := h.sseAs("2001:db8:1:3::1", testenv.AliceReadToken); resp.StatusCode != 200 {
		t.Fatalf("another /64: %d", resp.StatusCode)
	}

	// Trusted addresses are not counted: a proxy that does not say whom
	// it speaks for, a host on the private network.
	for range 3 {
		h.sse("/api/v1/streaming/public/local", testenv.AliceReadToken)
		if resp := h.sseAs("10.0.0.5", testenv.AliceReadToken); resp.StatusCode != 200 {
			t.Fatalf("trusted address: %d", resp.StatusCode)
		}
	}

	ws.Close()
	first.Body.Close()
	testenv.Eventually(t, 5*time.Second, func() error {
		if n, _, _ := h.edge.perClient.sizes(); n != 3 {
			return fmt.Errorf("%d addresses counted, want 3 (b and two /64s)", n)
		}
		return nil
	})
	for range 2 {
		if resp := h.sseAs(a, testenv.AliceReadToken); resp.StatusCode != 200 {
			t.Fatalf("after disconnecting: %d", resp.StatusCode)
		}
	}
	h.expectRefused(refusedPerIP, 3)
}

// Connections per account, on both transports; other accounts are
// unaffected, and a connection that ends gives its place back.
func TestConnectionsPerAccountLimit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.Limits.ConnectionsPerAccount = 2 })
	sse := h.sseAs("203.0.113.1", testenv.AliceReadToken)
	ws, _, err := h.wsAs("203.0.113.2", "alice-statuses-token")
	if sse.StatusCode != 200 || err != nil {
		t.Fatalf("within the limit: %d, %v", sse.StatusCode, err)
	}
	expectRefusal(t, h.sseAs("203.0.113.3", testenv.AliceReadToken), 429, "Too many connections for this account")
	_, resp, err := h.wsAs("203.0.113.4", testenv.AliceReadToken)
	expectUpgradeRefusal(t, resp, err, 429, "Too many connections for this account")
	h.expectRefused(refusedPerAccount, 2)
	if resp := h.sseAs("203.0.113.3", testenv.BobReadToken); resp.StatusCode != 200 {
		t.Fatalf("another account: %d", resp.StatusCode)
	}
	ws.Close()
	testenv.Eventually(t, 5*time.Second, func() error {
		resp := h.sseAs("203.0.113.5", testenv.AliceReadToken)
		if resp.StatusCode != 200 {
			resp.Body.Close()
			return fmt.Errorf("after disconnecting: %d", resp.StatusCode)
		}
		return nil
	})
}

// New connections per second per address: every request counts, refused
// ones too, on both transports; beyond the burst they get 429 Too many
// requests, however valid their token; other addresses are unaffected.
func TestConnectRateLimit(t *testing.T) {
	t.Parallel()
	// A rate so low that no token comes back during the test.
	h := newHarness(t, func(c *Config) { c.Limits.ConnectRate, c.Limits.ConnectBurst = 0.001, 3 })
	const a = "203.0.113.7"
	expectRefusal(t, h.sseAs(a, "not-a-token"), 401, "Invalid access token")
	_, resp, err := h.wsAs(a, "not-a-token")
	expectUpgradeRefusal(t, resp, err, 401, "Invalid access token")
	if resp := h.sseAs(a, testenv.AliceReadToken); resp.StatusCode != 200 {
		t.Fatalf("third request: %d", resp.StatusCode)
	}
	expectRefusal(t, h.sseAs(a, testenv.AliceReadToken), 429, "Too many requests")
	_, resp, err = h.wsAs(a, testenv.AliceReadToken)
	expectUpgradeRefusal(t, resp, err, 429, "Too many requests")
	h.expectRefused(refusedConnectRate, 2)
	if resp := h.sseAs("198.51.100.8", testenv.AliceReadToken); resp.StatusCode != 200 {
		t.Fatalf("another address: %d", resp.StatusCode)
	}
	if _, _, err := h.wsAs("198.51.100.8", testenv.AliceReadToken); err != nil {
		t.Fatalf("another address: %v", err)
	}
}

func (h *harness) subscribesRefused(reason string) float64 {
	return testutil.ToFloat64(h.edge.metrics.subscriptionsRefused.WithLabelValues(reason))
}

// Streams per WebSocket: a subscribe beyond the bound gets the error
// frame and the socket stays open and subscribed; subscribing again to a
// stream it has stays a silent no-op; unsubscribing makes room; another
// socket is unaffected.
func TestStreamsPerSocketLimit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.Limits.StreamsPerSocket = 2 })
	c, _, err := h.ws("/api/v1/streaming?stream=user&access_token="+testenv.AliceReadToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	sendJSON(t, c, `{"type":"subscribe","stream":"public"}`)
	h.waitChannels("websocket", "public", 1)
	const tooMany = `{"error":"Too many streams on this connection","status":429}`
	sendJSON(t, c, `{"type":"subscribe","stream":"public:local"}`)
	if got := readText(t, c); got != tooMany {
		t.Fatalf("third stream: %s", got)
	}
	sendJSON(t, c, `{"type":"subscribe","stream":"public"}`) // has it: nothing
	sendJSON(t, c, `{"type":"subscribe","stream":"nope"}`)
	if got := readText(t, c); got != `{"error":"Unknown stream type","status":400}` {
		t.Fatalf("after a repeated subscribe: %s", got)
	}
	if n := h.subscribesRefused(refusedStreams); n != 1 {
		t.Fatalf("refusals counted: %v", n)
	}
	h.publish(channel.Public(channel.ScopeAll, false), `{"event":"delete","payload":"1"}`)
	if got := readText(t, c); got != `{"stream":["public"],"event":"delete","payload":"1"}` {
		t.Fatalf("still subscribed: %s", got)
	}

	other, _, err := h.ws("/api/v1/streaming?access_token="+testenv.BobReadToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	sendJSON(t, other, `{"type":"subscribe","stream":"public"}`)
	sendJSON(t, other, `{"type":"subscribe","stream":"public:local"}`)
	h.waitChannels("websocket", "public:local", 1)

	sendJSON(t, c, `{"type":"unsubscribe","stream":"public"}`)
	h.waitChannels("websocket", "public", 1) // other's
	sendJSON(t, c, `{"type":"subscribe","stream":"public:local"}`)
	h.waitChannels("websocket", "public:local", 2)
}

// Subscribe messages per second per WebSocket: beyond the burst, a
// subscribe gets the error frame, the socket stays open and keeps what it
// has; another socket is unaffected.
func TestSubscribeRateLimit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.Limits.SubscribeRate, c.Limits.SubscribeBurst = 0.001, 2 })
	// The stream of the query is not a message: it does not count.
	c, _, err := h.ws("/api/v1/streaming?stream=user&access_token="+testenv.AliceReadToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	sendJSON(t, c, `{"type":"subscribe","stream":"public"}`)
	sendJSON(t, c, `{"type":"subscribe","stream":"nope"}`) // refused by resolution, but counted
	if got := readText(t, c); got != `{"error":"Unknown stream type","status":400}` {
		t.Fatalf("second subscribe: %s", got)
	}
	sendJSON(t, c, `{"type":"subscribe","stream":"public:local"}`)
	if got := readText(t, c); got != `{"error":"Too many requests","status":429}` {
		t.Fatalf("third subscribe: %s", got)
	}
	if n := h.subscribesRefused(refusedSubscribeRate); n != 1 {
		t.Fatalf("refusals counted: %v", n)
	}
	h.waitChannels("websocket", "public", 1)
	h.publish(channel.Public(channel.ScopeAll, false), `{"event":"delete","payload":"1"}`)
	if got := readText(t, c); got != `{"stream":["public"],"event":"delete","payload":"1"}` {
		t.Fatalf("still subscribed: %s", got)
	}
	other, _, err := h.ws("/api/v1/streaming?access_token="+testenv.BobReadToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	sendJSON(t, other, `{"type":"subscribe","stream":"public:local"}`)
	h.waitChannels("websocket", "public:local", 1)
}
