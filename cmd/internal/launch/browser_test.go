package launch

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/redis/go-redis/v9"

	"github.com/spillway/spillway/shared/testenv"
)

// chromiumEnv names the browser binary the browser test runs; unset, it
// looks for "chromium" in PATH (Debian's package installs /usr/bin/chromium).
const chromiumEnv = "STREAMING_TEST_CHROMIUM"

const (
	// browserLife bounds a browser's whole life: whatever hangs, Chromium is
	// killed by then.
	browserLife = 3 * time.Minute
	// evalTimeout bounds one DevTools call.
	evalTimeout = 10 * time.Second
	// deliveryTimeout bounds each wait for the page to see something.
	deliveryTimeout = 15 * time.Second
)

// chromiumPath returns the browser to run, or skips the test when there is
// none; with CI or STREAMING_TEST_REQUIRE_SERVICES=1 set it fails instead,
// so CI cannot pass by skipping.
func chromiumPath(t *testing.T) string {
	t.Helper()
	name := os.Getenv(chromiumEnv)
	if name == "" {
		name = "chromium"
	}
	path, err := exec.LookPath(name)
	if err != nil {
		msg := fmt.Sprintf("no browser: %v (install Debian's chromium package, or set %s to a Chromium or Chrome binary)", err, chromiumEnv)
		if os.Getenv("CI") != "" || os.Getenv("STREAMING_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatalf("%s; required because CI or STREAMING_TEST_REQUIRE_SERVICES=1 is set", msg)
		}
		t.Skipf("%s; CI fails instead of skipping", msg)
	}
	return path
}

// startBrowser starts a headless Chromium and returns the context of its
// first tab; further tabs are chromedp.NewContext children of it. extra
// adds flags (a case served over TLS by a test CA would add the flag that
// trusts it). Chromium is killed when the test ends, whatever happened, and
// its output is logged if the test failed.
func startBrowser(t *testing.T, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	path := chromiumPath(t)
	out := &logBuffer{}
	opts := append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		// Chromium's own traffic (QUIC probes, field trials, component
		// updates, sync) has nowhere to go on a closed network; refused
		// many at a time, it disturbs the page's connections.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.CombinedOutput(out),
		// No UserDataDir: the allocator gives each browser a fresh
		// temporary --user-data-dir, and removes it after killing every
		// Chromium process still using it.
	}, extra...)
	life, endLife := context.WithTimeout(context.Background(), browserLife)
	allocCtx, stopAlloc := chromedp.NewExecAllocator(life, opts...)
	ctx, closeBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		closeBrowser()
		stopAlloc() // kills Chromium and waits for it
		endLife()
		if t.Failed() {
			t.Logf("chromium output:\n%s", out)
		}
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	return ctx
}

// openPage opens url in a new tab of browser, which is closed when the
// test ends, and records the tab's network events.
func openPage(t *testing.T, browser context.Context, url string) (context.Context, *netLog) {
	t.Helper()
	ctx, closeTab := chromedp.NewContext(browser)
	t.Cleanup(closeTab)
	nl := &netLog{reqs: map[network.RequestID]*netRequest{}}
	start, cancel := context.WithTimeout(ctx, evalTimeout)
	defer cancel()
	if err := chromedp.Listen(ctx, nl.record); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(start, network.Enable, network.EnableParams{}); err != nil {
		t.Fatalf("Network.enable: %v", err)
	}
	if err := chromedp.Do(start, chromedp.Navigate(url)); err != nil {
		t.Fatalf("navigating to %s: %v", url, err)
	}
	return ctx, nl
}

// evaluate runs a JavaScript expression in the page and decodes its value.
func evaluate[T any](t *testing.T, ctx context.Context, expr string, opts ...chromedp.EvaluateOption) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, evalTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, opts...))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// jsCall renders a call of a page function with JSON-encoded arguments.
func jsCall(fn string, args ...any) string {
	var b strings.Builder
	b.WriteString(fn + "(")
	for i, a := range args {
		if i > 0 {
			b.WriteString(", ")
		}
		j, err := json.Marshal(a)
		if err != nil {
			panic(err)
		}
		b.Write(j)
	}
	b.WriteString(")")
	return b.String()
}

// pageFrame is one event as the page received it. Stream is the
// WebSocket frame's stream label as JSON, empty on an EventSource; Payload
// is the frame's payload string or the EventSource message's data.
type pageFrame struct {
	Client  string `json:"client"`
	Stream  string `json:"stream"`
	Event   string `json:"event"`
	Payload string `json:"payload"`
}

// pageSnapshot is what the page's snapshot() returns.
type pageSnapshot struct {
	Received []pageFrame         `json:"received"`
	Probes   []string            `json:"probes"`
	States   map[string][]string `json:"states"`
	Origin   string              `json:"origin"`
}

func snapshot(t *testing.T, ctx context.Context) pageSnapshot {
	t.Helper()
	return evaluate[pageSnapshot](t, ctx, "snapshot()")
}

// railsEvent is a message as Mastodon's Rails side publishes it, and what a
// page client subscribed to its stream receives.
type railsEvent struct {
	stream  string // stream name whose subscribers receive it
	channel string // Redis channel, without the namespace
	message string // the JSON published
	event   string // event name delivered
	payload string // payload delivered, as canonicalPayload gives it
}

// canonicalPayload re-encodes an object payload with sorted keys, so that
// the comparison holds the content, not the key order (goldens elsewhere
// hold the bytes); a string payload stays as it is.
func canonicalPayload(p string) string {
	var m map[string]any
	if json.Unmarshal([]byte(p), &m) != nil {
		return p
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// webUIEvents are what Rails publishes while a web UI user follows her home
// timeline, the local timeline and a hashtag: a home update, a mention
// notification, a local status, a status tagged #Café and a deletion.
func webUIEvents() []railsEvent {
	alice := strconv.FormatInt(testenv.Alice, 10)
	bob := map[string]any{"id": strconv.FormatInt(testenv.Bob, 10), "username": "bob", "acct": "bob", "display_name": "Bob", "url": "https://example.com/@bob"}
	status := func(id, content string, tags ...string) map[string]any {
		tagList := []any{}
		for _, tag := range tags {
			tagList = append(tagList, map[string]any{"name": tag, "url": "https://example.com/tags/" + tag})
		}
		return map[string]any{
			"id": id, "created_at": "2024-05-01T12:00:00.000Z", "in_reply_to_id": nil,
			"sensitive": false, "spoiler_text": "", "visibility": "public", "language": "en",
			"uri": "https://example.com/users/bob/statuses/" + id, "url": "https://example.com/@bob/" + id,
			"content": content, "account": bob, "mentions": []any{}, "media_attachments": []any{},
			"tags": tagList, "emojis": []any{},
		}
	}
	// Home payloads are rendered for the recipient and carry "filtered";
	// public and hashtag ones do not, and the server appends the
	// recipient's filter results (none match here).
	withFiltered := func(s map[string]any) map[string]any {
		c := map[string]any{"filtered": []any{}}
		for k, v := range s {
			c[k] = v
		}
		return c
	}
	home := withFiltered(status("101", "<p>Home &amp; away: \u00e0 bient\u00f4t \u2603</p>"))
	local := status("102", "<p>Local <b>news</b> \u2028 line separator</p>")
	tagged := status("103", `<p>Un caf\u00e9 <a href="https://example.com/tags/caf\u00e9">#Caf\u00e9</a></p>`, "café")
	notification := map[string]any{"id": "201", "type": "mention", "created_at": "2024-05-01T12:00:01.000Z",
		"group_key": "ungrouped-201", "account": bob, "status": withFiltered(status("104", "<p>@alice hi</p>"))}
	queued := int64(1714564800000)
	rails := func(event string, payload any) string {
		return mustJSON(map[string]any{"event": event, "payload": payload, "queued_at": queued})
	}
	return []railsEvent{
		{"user", "timeline:" + alice, rails("update", home), "update", canonicalPayload(mustJSON(home))},
		{"user", "timeline:" + alice + ":notifications", rails("notification", notification), "notification", canonicalPayload(mustJSON(notification))},
		{"public:local", "timeline:public:local", rails("update", local), "update", canonicalPayload(mustJSON(withFiltered(local)))},
		{"hashtag", "timeline:hashtag:cafe", rails("update", tagged), "update", canonicalPayload(mustJSON(withFiltered(tagged)))},
		{"public:local", "timeline:public:local", `{"event":"delete","payload":"102"}`, "delete", "102"},
	}
}

// pageStream says that a page client holds a stream, and with which label
// its WebSocket frames come ("" on an EventSource, whose events have none).
type pageStream struct {
	client, stream, label string
}

// pageScenario is one page's use of the streaming server.
type pageScenario struct {
	name     string
	base     string   // the streaming server's base URL
	protocol string   // HTTP version the browser must report for EventSource responses
	open     []string // page calls that open the streams
	streams  []pageStream
	events   []railsEvent
	// oneConnection: every EventSource must share one connection (HTTP/2).
	oneConnection bool
}

// TestBrowser runs a real Chromium against an all-in-one server: a page
// from another origin opens EventSource and WebSocket streams with a token
// as Mastodon's web UI does, events published to Redis reach it, and the
// browser's CORS checks pass. The same server over TLS speaks HTTP/2, and
// a page there opens eight EventSources (more than HTTP/1.1's six per host)
// beside a WebSocket: each scenario has its server's base URL and protocol.
func TestBrowser(t *testing.T) {
	chromiumPath(t) // skip before starting anything
	rdb, ns := testenv.Redis(t)
	log := command(t, Edge, []string{"edge", "-all-in-one", "-mastodon-root", t.TempDir()}, baseEnv(t, ns))
	edgeBase := "http://" + log.await(t, listeningRe)
	// The same server over TLS, with a certificate from a CA of the
	// test's own, which the browser trusts by the key's hash.
	cert := testenv.NewServerCert(t)
	tlsEnv := baseEnv(t, ns)
	tlsEnv["STREAMING_TLS_CERT"], tlsEnv["STREAMING_TLS_KEY"] = cert.CertFile, cert.KeyFile
	tlsLog := command(t, Edge, []string{"edge", "-all-in-one", "-mastodon-root", t.TempDir()}, tlsEnv)
	tlsBase := "https://" + tlsLog.await(t, listeningRe)
	// Started after the servers, so stopped before them: the servers
	// then have no browser connections left to drain.
	browser := startBrowser(t, chromedp.Flag("ignore-certificate-errors-spki-list", cert.SPKIHash))
	pages := httptest.NewServer(http.FileServer(http.Dir("testdata/browser")))
	t.Cleanup(pages.Close)
	pageURL := pages.URL + "/page.html"

	token := testenv.AliceReadToken
	wsBase := "ws" + strings.TrimPrefix(edgeBase, "http")
	scenarios := []pageScenario{
		{
			name: "one WebSocket, three subscriptions", base: edgeBase, protocol: "http/1.1",
			open: []string{jsCall("openWebSocket", "ws", wsBase+"/api/v1/streaming/", token, []map[string]string{
				{"stream": "user"}, {"stream": "public:local"}, {"stream": "hashtag", "tag": "Café"},
			})},
			streams: []pageStream{{"ws", "user", `["user"]`}, {"ws", "public:local", `["public:local"]`}, {"ws", "hashtag", `["hashtag","Café"]`}},
			events:  webUIEvents(),
		},
		{
			name: "an EventSource per stream", base: edgeBase, protocol: "http/1.1",
			open: []string{
				jsCall("openEventSource", "es-user", edgeBase+"/api/v1/streaming/user?access_token="+token),
				jsCall("openEventSource", "es-local", edgeBase+"/api/v1/streaming/public/local?access_token="+token),
				jsCall("openEventSource", "es-tag", edgeBase+"/api/v1/streaming/hashtag?tag="+url.QueryEscape("Café")+"&access_token="+token),
			},
			streams: []pageStream{{"es-user", "user", ""}, {"es-local", "public:local", ""}, {"es-tag", "hashtag", ""}},
			events:  webUIEvents(),
		},
		manyEventSources(tlsBase, token),
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			runPageScenario(t, browser, pageURL, rdb, ns, token, sc)
		})
	}
	t.Run("preflighted fetch", func(t *testing.T) {
		checkPreflight(t, browser, pageURL, edgeBase, token)
	})
}

// manyEventSources is a page that opens eight EventSources to a server
// speaking HTTP/2, beyond the six connections per host a browser holds
// over HTTP/1.1 (the seventh and eighth would never open): they all share
// one connection. A WebSocket beside them takes the HTTP/1.1 upgrade, on
// a connection of its own.
func manyEventSources(base, token string) pageScenario {
	sc := pageScenario{name: "eight EventSources and a WebSocket over TLS", base: base, protocol: "h2", oneConnection: true, events: webUIEvents()}
	paths := []struct{ stream, path string }{
		{"user", "/api/v1/streaming/user"},
		{"public:local", "/api/v1/streaming/public/local"},
		{"hashtag", "/api/v1/streaming/hashtag?tag=" + url.QueryEscape("Café")},
	}
	for i := range 8 {
		p := paths[i%len(paths)]
		sep := "?"
		if strings.Contains(p.path, "?") {
			sep = "&"
		}
		client := fmt.Sprintf("es-%d", i+1)
		sc.open = append(sc.open, jsCall("openEventSource", client, base+p.path+sep+"access_token="+token))
		sc.streams = append(sc.streams, pageStream{client, p.stream, ""})
	}
	sc.open = append(sc.open, jsCall("openWebSocket", "wss", "wss"+strings.TrimPrefix(base, "https")+"/api/v1/streaming/", token,
		[]map[string]string{{"stream": "user"}}))
	sc.streams = append(sc.streams, pageStream{"wss", "user", `["user"]`})
	return sc
}

// runPageScenario opens the scenario's streams in a fresh tab, waits until
// each has seen a probe on each of its channels, publishes the events once
// and checks the page got exactly what it should, over connections the
// browser accepted under CORS.
func runPageScenario(t *testing.T, browser context.Context, pageURL string, rdb *redis.Client, ns, token string, sc pageScenario) {
	ctx, nl := openPage(t, browser, pageURL)
	for _, js := range sc.open {
		evaluate[chromedp.Void](t, ctx, js)
	}

	// Subscriptions are not acknowledged: publish a probe on every channel
	// a client still waits for until each has seen one.
	pending := map[string]string{} // "<client> probe <channel>" → channel
	for _, s := range sc.streams {
		for _, ev := range sc.events {
			if ev.stream == s.stream {
				pending[s.client+" probe "+ev.channel] = ev.channel
			}
		}
	}
	bg := context.Background()
	testenv.Eventually(t, deliveryTimeout, func() error {
		channels := map[string]bool{}
		for _, ch := range pending {
			channels[ch] = true
		}
		for ch := range channels {
			if err := rdb.Publish(bg, ns+":"+ch, mustJSON(map[string]string{"event": "delete", "payload": "probe " + ch})).Err(); err != nil {
				return err
			}
		}
		snap := snapshot(t, ctx)
		for client, states := range snap.States {
			for _, st := range states {
				if !strings.HasPrefix(st, "open") {
					t.Fatalf("client %s: %q; the browser's requests:\n%s", client, states, nl.describe(token))
				}
			}
		}
		for _, p := range snap.Probes {
			delete(pending, p)
		}
		if len(pending) > 0 {
			return fmt.Errorf("no probe yet for %v; page states %v", slices.Sorted(maps.Keys(pending)), snap.States)
		}
		return nil
	})

	var want []pageFrame
	for _, ev := range sc.events {
		if err := rdb.Publish(bg, ns+":"+ev.channel, ev.message).Err(); err != nil {
			t.Fatal(err)
		}
		for _, s := range sc.streams {
			if s.stream == ev.stream {
				want = append(want, pageFrame{s.client, s.label, ev.event, ev.payload})
			}
		}
	}
	var snap pageSnapshot
	testenv.Eventually(t, deliveryTimeout, func() error {
		snap = snapshot(t, ctx)
		missing := slices.Clone(want)
		for _, f := range snap.Received {
			f.Payload = canonicalPayload(f.Payload)
			i := slices.Index(missing, f)
			if i < 0 {
				t.Fatalf("unexpected frame %+v; want %+v", f, want)
			}
			missing = slices.Delete(missing, i, i+1)
		}
		if len(missing) > 0 {
			return fmt.Errorf("missing %+v", missing)
		}
		return nil
	})

	for _, s := range sc.streams {
		wantState := "open"
		if s.label != "" {
			// The browser opens the socket only if the server selected the
			// offered subprotocol, the token, as Mastodon's does.
			wantState = "open protocol=" + token
		}
		if got := snap.States[s.client]; len(got) != 1 || got[0] != wantState {
			t.Errorf("client %s: states %q, want [%q]", s.client, got, wantState)
		}
	}
	checkStreamRequests(t, nl, sc, snap.Origin, token)
}

// checkStreamRequests checks, from the browser's own network records, that
// every stream request to the server went out with the page's Origin and was
// answered as a cross-origin client needs.
func checkStreamRequests(t *testing.T, nl *netLog, sc pageScenario, origin, token string) {
	t.Helper()
	base, err := url.Parse(sc.base)
	if err != nil {
		t.Fatal(err)
	}
	clients := map[string]bool{}
	for _, s := range sc.streams {
		clients[s.client] = true
	}
	var seen int
	esConns := map[float64]bool{}
	for _, r := range nl.requests() {
		u, err := url.Parse(r.url)
		if err != nil || u.Host != base.Host {
			continue
		}
		seen++
		t.Logf("%s %s %s: %d over %q (connection %v); sent Origin %q; got Access-Control-Allow-Origin %q, Sec-WebSocket-Protocol %q",
			r.kind, r.method, redactToken(r.url, token), r.status, r.protocol, r.connID, r.reqHeader("Origin"),
			r.respHeader("Access-Control-Allow-Origin"), r.respHeader("Sec-WebSocket-Protocol"))
		if got := r.reqHeader("Origin"); got != origin {
			t.Errorf("%s: sent Origin %q, want the page's %q", r.url, got, origin)
		}
		if r.failure != "" {
			t.Errorf("%s failed: %s", r.url, r.failure)
		}
		switch r.kind {
		case string(network.ResourceTypeEventSource):
			esConns[r.connID] = true
			if r.status != 200 || r.respHeader("Access-Control-Allow-Origin") != "*" || r.protocol != sc.protocol {
				t.Errorf("%s: status %d, Access-Control-Allow-Origin %q, protocol %q; want 200, *, %s",
					r.url, r.status, r.respHeader("Access-Control-Allow-Origin"), r.protocol, sc.protocol)
			}
		case string(network.ResourceTypeWebSocket):
			if r.status != 101 || r.respHeader("Sec-WebSocket-Protocol") != token {
				t.Errorf("%s: status %d, Sec-WebSocket-Protocol %q; want 101, the token",
					r.url, r.status, r.respHeader("Sec-WebSocket-Protocol"))
			}
		default:
			t.Errorf("unexpected %s request %s", r.kind, r.url)
		}
	}
	if seen != len(clients) {
		t.Errorf("the browser made %d requests to the server, want one per client (%d)", seen, len(clients))
	}
	if sc.oneConnection && len(esConns) != 1 {
		t.Errorf("the EventSources used %d connections, want them all on one", len(esConns))
	}
}

// fetchResult is what the page's fetchText returns.
type fetchResult struct {
	Status int    `json:"status"`
	Body   string `json:"body"`
	Error  string `json:"error"`
}

// checkPreflight fetches the health endpoint and a stream with an
// Authorization header, which makes the browser send a CORS preflight
// first; and, as a control, opens an EventSource to a third origin that
// sends no Access-Control-Allow-Origin, which the browser must refuse.
func checkPreflight(t *testing.T, browser context.Context, pageURL, edgeBase, token string) {
	bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = w.Write([]byte(":)\n\n"))
	}))
	t.Cleanup(bare.Close)
	ctx, nl := openPage(t, browser, pageURL)

	auth := map[string]string{"Authorization": "Bearer " + token}
	health := evaluate[fetchResult](t, ctx, jsCall("fetchText", edgeBase+"/api/v1/streaming/health", auth), chromedp.EvalAwaitPromise)
	if health.Status != 200 || health.Body != "OK" {
		t.Errorf("health: %+v, want 200 OK", health)
	}
	stream := evaluate[fetchResult](t, ctx, jsCall("fetchText", edgeBase+"/api/v1/streaming/public/local", auth), chromedp.EvalAwaitPromise)
	if stream.Status != 200 || !strings.HasPrefix(stream.Body, ":)") {
		t.Errorf("stream: %+v, want 200 and the stream's first line", stream)
	}

	evaluate[chromedp.Void](t, ctx, jsCall("openEventSource", "control", bare.URL+"/stream"))
	testenv.Eventually(t, deliveryTimeout, func() error {
		// readyState 2 is CLOSED: the browser gave up on the stream.
		if states := snapshot(t, ctx).States["control"]; !slices.Equal(states, []string{"error readyState=2"}) {
			return fmt.Errorf("control EventSource states %q, want one error closing it", states)
		}
		return nil
	})

	var preflights, fetches int
	for _, r := range nl.requests() {
		t.Logf("%s %s %s: %d; sent Origin %q, Access-Control-Request-Headers %q; got Access-Control-Allow-Origin %q, -Methods %q, -Headers %q; failure %q",
			r.kind, r.method, r.url, r.status, r.reqHeader("Origin"), r.reqHeader("Access-Control-Request-Headers"),
			r.respHeader("Access-Control-Allow-Origin"), r.respHeader("Access-Control-Allow-Methods"),
			r.respHeader("Access-Control-Allow-Headers"), r.failure)
		switch {
		case strings.HasPrefix(r.url, bare.URL):
			if r.failure != "cors MissingAllowOriginHeader" {
				t.Errorf("control %s: failure %q, want the browser's CORS refusal", r.url, r.failure)
			}
		case !strings.HasPrefix(r.url, edgeBase):
		case r.method == http.MethodOptions:
			// Chromium reports a preflight as an OPTIONS request of
			// type Other (older versions: Preflight).
			preflights++
			if r.method != "OPTIONS" || r.status != 204 || r.respHeader("Access-Control-Allow-Origin") != "*" ||
				!strings.EqualFold(r.respHeader("Access-Control-Allow-Headers"), "authorization") {
				t.Errorf("preflight %s %s: %d, allow origin %q, headers %q", r.method, r.url, r.status,
					r.respHeader("Access-Control-Allow-Origin"), r.respHeader("Access-Control-Allow-Headers"))
			}
		case r.kind == string(network.ResourceTypeFetch):
			fetches++
			// The page cancels each body after its first chunk, so
			// the browser reports net::ERR_ABORTED; only a CORS
			// failure counts.
			if r.status != 200 || r.respHeader("Access-Control-Allow-Origin") != "*" || r.reqHeader("Authorization") == "" ||
				strings.HasPrefix(r.failure, "cors") {
				t.Errorf("fetch %s: %d, allow origin %q, sent Authorization %t, failure %q", r.url, r.status,
					r.respHeader("Access-Control-Allow-Origin"), r.reqHeader("Authorization") != "", r.failure)
			}
		}
	}
	if preflights != 2 || fetches != 2 {
		t.Errorf("saw %d preflights and %d fetches to the server, want 2 and 2", preflights, fetches)
	}
}

// netLog records what a tab's network stack reports: the headers as sent
// and received on the wire, and why a request failed.
type netLog struct {
	mu    sync.Mutex
	reqs  map[network.RequestID]*netRequest
	order []network.RequestID
}

type netRequest struct {
	url, method, kind string
	status            int64
	protocol          string
	connID            float64 // the browser's id of the connection that carried the response
	sent, got         network.Headers
	failure           string
}

// get returns the record of id, creating it: extra-info events can come
// before the request's own.
func (l *netLog) get(id network.RequestID) *netRequest {
	r := l.reqs[id]
	if r == nil {
		r = &netRequest{}
		l.reqs[id] = r
		l.order = append(l.order, id)
	}
	return r
}

// record is the tab's event listener; it runs on chromedp's reader
// goroutine, so it only stores.
func (l *netLog) record(ev any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		r := l.get(ev.RequestID)
		r.url, r.method, r.kind = ev.Request.URL, ev.Request.Method, string(ev.Type)
		if r.sent == nil {
			r.sent = ev.Request.Headers
		}
	case *network.EventRequestWillBeSentExtraInfo:
		l.get(ev.RequestID).sent = ev.Headers
	case *network.EventResponseReceived:
		r := l.get(ev.RequestID)
		r.status, r.protocol, r.connID = ev.Response.Status, ev.Response.Protocol, ev.Response.ConnectionID
		if r.got == nil {
			r.got = ev.Response.Headers
		}
	case *network.EventResponseReceivedExtraInfo:
		r := l.get(ev.RequestID)
		r.status, r.got = ev.StatusCode, ev.Headers
	case *network.EventLoadingFailed:
		r := l.get(ev.RequestID)
		r.failure = ev.ErrorText
		if ev.CorsErrorStatus != nil {
			r.failure = "cors " + string(ev.CorsErrorStatus.CorsError)
		}
	case *network.EventWebSocketCreated:
		r := l.get(ev.RequestID)
		r.url, r.method, r.kind = ev.URL, "GET", string(network.ResourceTypeWebSocket)
	case *network.EventWebSocketWillSendHandshakeRequest:
		l.get(ev.RequestID).sent = ev.Request.Headers
	case *network.EventWebSocketHandshakeResponseReceived:
		r := l.get(ev.RequestID)
		r.status, r.got = ev.Response.Status, ev.Response.Headers
	}
}

// requests returns copies of the records, in the order requests appeared.
func (l *netLog) requests() []netRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]netRequest, 0, len(l.order))
	for _, id := range l.order {
		if r := l.reqs[id]; r.url != "" {
			out = append(out, *r)
		}
	}
	return out
}

// describe lists the requests, one a line, for a failure message.
func (l *netLog) describe(token string) string {
	var b strings.Builder
	for _, r := range l.requests() {
		fmt.Fprintf(&b, "\t%s %s %s: %d %s\n", r.kind, r.method, redactToken(r.url, token), r.status, r.failure)
	}
	return b.String()
}

func (r netRequest) reqHeader(name string) string  { return header(r.sent, name) }
func (r netRequest) respHeader(name string) string { return header(r.got, name) }

// header looks a header up case-insensitively: the browser reports names as
// they were on the wire (HTTP/1.1) or lower-cased (HTTP/2).
func header(h network.Headers, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			s, _ := v.(string)
			return s
		}
	}
	return ""
}

// redactToken keeps the fixture token out of the logs, as the server does.
func redactToken(s, token string) string {
	return strings.ReplaceAll(s, token, "[Redacted]")
}
