package launch

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/spillway/spillway/shared/mastodonenv"
	"github.com/spillway/spillway/shared/testenv"
)

// logBuffer collects a command's stdout and lets a test wait for a line.
type logBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// await waits for re to match the log and returns its first group.
func (l *logBuffer) await(t *testing.T, re *regexp.Regexp) string {
	t.Helper()
	var got string
	testenv.Eventually(t, 15*time.Second, func() error {
		m := re.FindStringSubmatch(l.String())
		if m == nil {
			return fmt.Errorf("no %v in log:\n%s", re, l.String())
		}
		got = m[1]
		return nil
	})
	return got
}

var (
	listeningRe = regexp.MustCompile(`Streaming API now listening on ([0-9.:]+)`)
	natsRe      = regexp.MustCompile(`NATS listening for edges on (nats://[0-9.:]+)`)
)

// command runs Broker or Edge until the test ends, and checks it returns nil
// after cancellation.
func command(t *testing.T, main func(context.Context, []string, mastodonenv.Env, io.Writer, io.Writer) error, args []string, env map[string]string) *logBuffer {
	t.Helper()
	out := &logBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- main(ctx, args, mastodonenv.MapEnv(env), out, out) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s returned %v", args[0], err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("%s did not stop", args[0])
		}
	})
	return out
}

type sseStream struct {
	t *testing.T
	r *bufio.Reader
}

func openSSE(t *testing.T, addr, path, token string) *sseStream {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	s := &sseStream{t: t, r: bufio.NewReader(resp.Body)}
	if l := s.line(); l != ":)\n" {
		t.Fatalf("first line %q", l)
	}
	return s
}

func (s *sseStream) line() string {
	s.t.Helper()
	ch := make(chan string, 1)
	go func() { l, _ := s.r.ReadString('\n'); ch <- l }()
	select {
	case l := <-ch:
		return l
	case <-time.After(10 * time.Second):
		s.t.Fatal("timeout reading SSE")
		return ""
	}
}

// next returns the next "event: …" line and its data line.
func (s *sseStream) next() string {
	s.t.Helper()
	for {
		l := s.line()
		if strings.HasPrefix(l, "event: ") {
			d := s.line()
			s.line()
			return l + d
		}
		if l == "" {
			s.t.Fatal("stream ended")
		}
	}
}

func baseEnv(t *testing.T, ns string) map[string]string {
	return map[string]string{
		"DATABASE_URL":    testenv.PostgresURL(t),
		"REDIS_URL":       testenv.RedisURL(t),
		"REDIS_NAMESPACE": ns,
		"BIND":            "127.0.0.1",
		"PORT":            "0",
		"LOG_LEVEL":       "info",
	}
}

// All-in-one: Redis → broker → in-process NATS → edge → SSE and WebSocket,
// and the subscribed: key Rails needs.
func TestAllInOne(t *testing.T) {
	rdb, ns := testenv.Redis(t)
	env := baseEnv(t, ns)
	log := command(t, Edge, []string{"edge", "-all-in-one", "-mastodon-root", t.TempDir()}, env)
	addr := log.await(t, listeningRe)

	sse := openSSE(t, addr, "/api/v1/streaming/user", testenv.AliceReadToken)
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/api/v1/streaming?stream=user", http.Header{"Sec-Websocket-Protocol": {testenv.AliceReadToken}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ctx := context.Background()
	key := fmt.Sprintf("%s:subscribed:timeline:%d", ns, testenv.Alice)
	testenv.Eventually(t, 10*time.Second, func() error {
		ttl, err := rdb.TTL(ctx, key).Result()
		if err != nil || ttl <= 0 {
			return fmt.Errorf("%s ttl %v %v", key, ttl, err)
		}
		return nil
	})
	// The WebSocket subscription has no acknowledgement: publish until it
	// sees something, then check the SSE client got the same event.
	frames := make(chan string, 64)
	go func() {
		for {
			_, msg, err := ws.ReadMessage()
			if err != nil {
				close(frames)
				return
			}
			frames <- string(msg)
		}
	}()
	channelName := fmt.Sprintf("%s:timeline:%d", ns, testenv.Alice)
	testenv.Eventually(t, 10*time.Second, func() error {
		rdb.Publish(ctx, channelName, `{"event":"delete","payload":"1"}`)
		select {
		case msg := <-frames:
			if msg != `{"stream":["user"],"event":"delete","payload":"1"}` {
				t.Fatalf("frame %s", msg)
			}
			return nil
		case <-time.After(300 * time.Millisecond):
			return fmt.Errorf("no frame yet")
		}
	})
	if got := sse.next(); got != "event: delete\ndata: 1\n" {
		t.Fatalf("sse got %q", got)
	}
}

// Split mode: one broker and two edges over TCP NATS. An event published
// to Redis reaches the SSE and WebSocket clients of both edges exactly once
// each.
func TestSplitMode(t *testing.T) {
	rdb, ns := testenv.Redis(t)
	benv := baseEnv(t, ns)
	benv["STREAMING_NATS_LISTEN"] = "127.0.0.1:-1"
	blog := command(t, Broker, []string{"broker", "-mastodon-root", t.TempDir()}, benv)
	natsURL := blog.await(t, natsRe)

	var clients []<-chan string
	for range 2 {
		env := baseEnv(t, ns)
		env["STREAMING_NATS_URL"] = natsURL
		log := command(t, Edge, []string{"edge", "-mastodon-root", t.TempDir()}, env)
		addr := log.await(t, listeningRe)
		for range 2 {
			clients = append(clients, sseEvents(openSSE(t, addr, "/api/v1/streaming/public/local", testenv.AliceReadToken)))
		}
		ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/api/v1/streaming?stream=public:local&access_token="+testenv.AliceReadToken, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ws.Close() })
		clients = append(clients, wsEvents(ws))
	}
	ctx := context.Background()
	waitPatternSubscribed(t, rdb, ns)
	channelName := ns + ":timeline:public:local"
	// WebSocket subscriptions are not acknowledged: probe until every
	// client has seen a probe.
	for i, c := range clients {
		testenv.Eventually(t, 10*time.Second, func() error {
			rdb.Publish(ctx, channelName, `{"event":"delete","payload":"probe"}`)
			for {
				select {
				case ev := <-c:
					if strings.Contains(ev, "probe") {
						return nil
					}
				case <-time.After(200 * time.Millisecond):
					return fmt.Errorf("client %d not subscribed yet", i)
				}
			}
		})
	}
	status := func(id string) string {
		return `{"id":"` + id + `","language":"en","account":{"id":"109000000000000002","username":"bob","acct":"bob"},"mentions":[],"media_attachments":[]}`
	}
	for _, m := range []string{`{"event":"update","payload":` + status("7") + `}`, `{"event":"delete","payload":"7"}`, `{"event":"update","payload":` + status("8") + `}`} {
		if err := rdb.Publish(ctx, channelName, m).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// Filtered updates keep their order, and the pass-through delete is
	// written before the later update is; so everything has arrived once
	// update 8 has.
	for i, c := range clients {
		got := map[string]int{}
		for done := false; !done; {
			select {
			case ev := <-c:
				switch {
				case strings.Contains(ev, "probe"):
				case strings.Contains(ev, `"id":"8"`) || strings.Contains(ev, `\"id\":\"8\"`):
					done = true
				default:
					got[ev]++
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("client %d: timeout; got %v", i, got)
			}
		}
		if len(got) != 2 {
			t.Fatalf("client %d got %v", i, got)
		}
		for ev, n := range got {
			if n != 1 {
				t.Fatalf("client %d got %q %d times", i, ev, n)
			}
		}
	}
}

// sseEvents and wsEvents turn a client into a channel of delivered events.
func sseEvents(s *sseStream) <-chan string {
	ch := make(chan string, 64)
	go func() {
		defer close(ch)
		for {
			l, err := s.r.ReadString('\n')
			if err != nil {
				return
			}
			if strings.HasPrefix(l, "event: ") {
				d, _ := s.r.ReadString('\n')
				ch <- l + d
			}
		}
	}()
	return ch
}

func wsEvents(c *websocket.Conn) <-chan string {
	ch := make(chan string, 64)
	go func() {
		defer close(ch)
		for {
			_, m, err := c.ReadMessage()
			if err != nil {
				return
			}
			ch <- string(m)
		}
	}()
	return ch
}

// waitPatternSubscribed waits until a broker has PSUBSCRIBEd to the
// namespace's timelines.
func waitPatternSubscribed(t *testing.T, rdb *redis.Client, ns string) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, func() error {
		n, err := rdb.Publish(context.Background(), ns+":timeline:probe", "x").Result()
		if err != nil || n == 0 {
			return fmt.Errorf("no pattern subscriber yet (%v)", err)
		}
		return nil
	})
}

func TestBadConfigurationNamesTheVariable(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"DB_PORT", map[string]string{"DB_PORT": "abc"}, "Invalid DB_PORT environment variable: abc"},
		{"REDIS_PORT", map[string]string{"REDIS_PORT": "x"}, "REDIS_PORT"},
		{"NODE_ENV", map[string]string{"NODE_ENV": "test"}, "Unable to resolve postgresql database configuration."},
		{"prefix", map[string]string{"STREAMING_NATS_PREFIX": "a b"}, "STREAMING_NATS_PREFIX"},
		{"grace", map[string]string{"STREAMING_SHUTDOWN_GRACE": "soon"}, "STREAMING_SHUTDOWN_GRACE"},
		{"TLS key without certificate", map[string]string{"STREAMING_TLS_KEY": "/etc/ssl/key.pem"}, "STREAMING_TLS_CERT and STREAMING_TLS_KEY"},
		{"TLS certificate missing", map[string]string{"STREAMING_TLS_CERT": "/nonexistent/cert.pem", "STREAMING_TLS_KEY": "/nonexistent/key.pem"}, "STREAMING_TLS_CERT /nonexistent/cert.pem"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Edge(context.Background(), []string{"edge", "-mastodon-root", t.TempDir()}, mastodonenv.MapEnv(tc.env), io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	for _, main := range []func(context.Context, []string, mastodonenv.Env, io.Writer, io.Writer) error{Edge, Broker} {
		var out strings.Builder
		err := main(context.Background(), []string{"x", "-help"}, mastodonenv.MapEnv(nil), &out, &out)
		if err == nil || !strings.Contains(out.String(), "STREAMING_NATS_URL") {
			t.Fatalf("help: %v\n%s", err, out.String())
		}
	}
}
