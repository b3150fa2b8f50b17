package launch

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/spillway/spillway/shared/channel"
	"github.com/spillway/spillway/shared/mastodonenv"
	"github.com/spillway/spillway/shared/testenv"
)

// startStreaming runs all-in-one, or a broker and an edge over TCP NATS,
// and returns the edge's address and every command's log.
func startStreaming(t *testing.T, mode, ns string, extra map[string]string) (addr string, logs []*logBuffer) {
	t.Helper()
	env := baseEnv(t, ns)
	for k, v := range extra {
		env[k] = v
	}
	switch mode {
	case "all-in-one":
		log := command(t, Edge, []string{"edge", "-all-in-one", "-mastodon-root", t.TempDir()}, env)
		return log.await(t, listeningRe), []*logBuffer{log}
	case "split":
		benv := baseEnv(t, ns)
		for k, v := range extra {
			benv[k] = v
		}
		benv["STREAMING_NATS_LISTEN"] = "127.0.0.1:-1"
		blog := command(t, Broker, []string{"broker", "-mastodon-root", t.TempDir()}, benv)
		env["STREAMING_NATS_URL"] = blog.await(t, natsRe)
		elog := command(t, Edge, []string{"edge", "-mastodon-root", t.TempDir()}, env)
		return elog.await(t, listeningRe), []*logBuffer{blog, elog}
	}
	t.Fatalf("unknown mode %q", mode)
	return "", nil
}

// receives publishes probes on a Redis channel until c delivers one.
func receives(t *testing.T, rdb *redis.Client, channelName string, c <-chan string, what string) {
	t.Helper()
	n := 0
	testenv.Eventually(t, 10*time.Second, func() error {
		n++
		probe := fmt.Sprintf("probe-%d", n)
		rdb.Publish(context.Background(), channelName, `{"event":"delete","payload":"`+probe+`"}`)
		timeout := time.After(300 * time.Millisecond)
		for {
			select {
			case ev, ok := <-c:
				if !ok {
					return fmt.Errorf("%s: stream ended", what)
				}
				if strings.Contains(ev, probe) {
					return nil
				}
			case <-timeout:
				return fmt.Errorf("%s: nothing delivered", what)
			}
		}
	})
}

// sseRequest makes one SSE request and returns its status and, for an
// error, its body; a stream that was accepted is closed with the test.
func sseRequest(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
	req.Header.Set("Authorization", "Bearer "+testenv.AliceReadToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	if resp.StatusCode == 200 {
		t.Cleanup(func() { resp.Body.Close() })
		return 200, ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// wsFrame reads the next frame, or "" when none comes in time.
func wsFrame(c <-chan string) string {
	select {
	case m := <-c:
		return m
	case <-time.After(5 * time.Second):
		return ""
	}
}

// A client that asks for a channel whose NATS subject would be too long
// (a huge tag or list id, on SSE, in a WebSocket upgrade's query or in a
// subscribe message), or a Redis message on such a channel, must not cut
// the edge or the broker off NATS: it gets Mastodon-style errors and every
// other client keeps receiving, also after the offender has left.
//
// Split mode runs with the longest prefix allowed, and in both modes a
// client of the longest tag accepted receives its events.
func TestOversizedChannelsDoNotStopDelivery(t *testing.T) {
	maxPrefix := strings.Repeat("p", channel.MaxPrefixLen)
	for _, tc := range []struct{ mode, prefix string }{{"all-in-one", ""}, {"split", maxPrefix}} {
		t.Run(tc.mode, func(t *testing.T) {
			rdb, ns := testenv.Redis(t)
			var extra map[string]string
			if tc.prefix != "" {
				extra = map[string]string{"STREAMING_NATS_PREFIX": tc.prefix}
			}
			addr, logs := startStreaming(t, tc.mode, ns, extra)
			t.Cleanup(func() {
				if t.Failed() {
					for _, l := range logs {
						t.Log(l.String())
					}
				}
			})
			waitPatternSubscribed(t, rdb, ns)

			userCh := fmt.Sprintf("%s:timeline:%d", ns, testenv.Alice)
			publicCh := ns + ":timeline:public:local"
			sse := sseEvents(openSSE(t, addr, "/api/v1/streaming/user", testenv.AliceReadToken))
			ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/api/v1/streaming?stream=public:local&access_token="+testenv.BobReadToken, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ws.Close() })
			wsc := wsEvents(ws)
			// 163 three-byte letters fill a local hashtag channel name.
			maxTag := strings.Repeat("日", 163)
			tagCh := ns + ":" + string(channel.Hashtag(maxTag, true))
			tagc := sseEvents(openSSE(t, addr, "/api/v1/streaming/hashtag/local?tag="+url.QueryEscape(maxTag), testenv.AliceReadToken))
			receives(t, rdb, userCh, sse, "SSE client before")
			receives(t, rdb, publicCh, wsc, "WebSocket client before")
			receives(t, rdb, tagCh, tagc, "client of the longest tag")

			longTag := strings.Repeat("a", 5000)
			longList := strings.Repeat("0", 5000) + fmt.Sprint(testenv.AliceList)
			const tagErr = `{"error":"Tag name parameter is too long"}`
			const listErr = `{"error":"Not authorized to stream this list"}`

			// SSE.
			for _, tc := range []struct {
				path string
				code int
				body string
			}{
				{"/api/v1/streaming/hashtag?tag=" + longTag, 400, tagErr},
				{"/api/v1/streaming/hashtag/local?tag=" + longTag, 400, tagErr},
				{"/api/v1/streaming/list?list=" + longList, 401, listErr},
			} {
				if code, body := sseRequest(t, addr, tc.path); code != tc.code || body != tc.body {
					t.Errorf("SSE %.40s…: %d %q, want %d %q", tc.path, code, body, tc.code, tc.body)
				}
			}

			// WebSocket: the upgrade's own stream, then subscribe messages.
			q := url.Values{"stream": {"hashtag"}, "tag": {longTag}, "access_token": {testenv.AliceReadToken}}
			evil, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/api/v1/streaming?"+q.Encode(), nil)
			if err != nil {
				t.Fatal(err)
			}
			evilc := wsEvents(evil)
			if got, want := wsFrame(evilc), `{"error":"Tag name parameter is too long","status":400}`; got != want {
				t.Errorf("WebSocket upgrade with a long tag: frame %q, want %q", got, want)
			}
			for _, tc := range []struct{ msg, want string }{
				{`{"type":"subscribe","stream":"hashtag:local","tag":"` + longTag + `"}`, `{"error":"Tag name parameter is too long","status":400}`},
				{`{"type":"subscribe","stream":"list","list":"` + longList + `"}`, `{"error":"Not authorized to stream this list","status":401}`},
			} {
				if err := evil.WriteMessage(websocket.TextMessage, []byte(tc.msg)); err != nil {
					t.Fatal(err)
				}
				if got := wsFrame(evilc); got != tc.want {
					t.Errorf("subscribe %.60s…: frame %q, want %q", tc.msg, got, tc.want)
				}
			}

			// Redis: a message on a channel too long to be a subject.
			if err := rdb.Publish(context.Background(), ns+":timeline:hashtag:"+longTag, `{"event":"delete","payload":"1"}`).Err(); err != nil {
				t.Fatal(err)
			}

			receives(t, rdb, userCh, sse, "SSE client after the attempts")
			receives(t, rdb, publicCh, wsc, "WebSocket client after the attempts")
			evil.Close()
			receives(t, rdb, userCh, sse, "SSE client after the offender left")
			receives(t, rdb, publicCh, wsc, "WebSocket client after the offender left")
			receives(t, rdb, tagCh, tagc, "client of the longest tag after the offender left")
			if tc.mode == "all-in-one" {
				resp, err := http.Get("http://" + addr + "/metrics")
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if want := `spillway_broker_messages_dropped_total{reason="invalid_channel"} 1`; !strings.Contains(string(body), want) {
					t.Errorf("metrics lack %s", want)
				}
			}
			for _, l := range logs {
				if s := strings.ToLower(l.String()); strings.Contains(s, "control line") || strings.Contains(s, "nats disconnected") {
					t.Errorf("a NATS connection was cut:\n%s", l.String())
				}
			}
		})
	}
}

// A prefix that could push subjects past the bound stops both commands at
// start, naming the variable.
func TestPrefixTooLong(t *testing.T) {
	env := map[string]string{"STREAMING_NATS_PREFIX": strings.Repeat("p", channel.MaxPrefixLen+1)}
	for _, main := range []func(context.Context, []string, mastodonenv.Env, io.Writer, io.Writer) error{Edge, Broker} {
		err := main(context.Background(), []string{"x", "-mastodon-root", t.TempDir()}, mastodonenv.MapEnv(env), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "STREAMING_NATS_PREFIX") {
			t.Fatalf("got %v, want an error naming STREAMING_NATS_PREFIX", err)
		}
	}
}
