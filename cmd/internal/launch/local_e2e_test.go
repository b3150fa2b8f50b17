package launch

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/spillway/spillway/shared/testenv"
)

// All-in-one hands events to its own edge in process and, while another
// edge is attached to its NATS listener, on NATS as well: both paths give
// clients the same bytes, in the same order.
func TestLocalAndNATSPathsCarryTheSameBytes(t *testing.T) {
	rdb, ns := testenv.Redis(t)
	env := baseEnv(t, ns)
	env["STREAMING_NATS_LISTEN"] = "127.0.0.1:0"
	aio := command(t, Edge, []string{"edge", "-all-in-one", "-mastodon-root", t.TempDir()}, env)
	localAddr := aio.await(t, listeningRe)
	natsURL := aio.await(t, natsRe)

	eenv := baseEnv(t, ns)
	eenv["STREAMING_NATS_URL"] = natsURL
	elog := command(t, Edge, []string{"edge", "-mastodon-root", t.TempDir()}, eenv)
	remoteAddr := elog.await(t, listeningRe)

	type client struct {
		name   string
		events <-chan string
	}
	var clients []client
	for _, e := range []struct{ name, addr string }{{"in process", localAddr}, {"NATS", remoteAddr}} {
		for _, path := range []string{"/api/v1/streaming/user", "/api/v1/streaming/public/local"} {
			clients = append(clients, client{e.name + " SSE " + path, sseEvents(openSSE(t, e.addr, path, testenv.AliceReadToken))})
		}
		ws, _, err := websocket.DefaultDialer.Dial("ws://"+e.addr+"/api/v1/streaming", http.Header{"Sec-Websocket-Protocol": {testenv.AliceReadToken}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ws.Close() })
		for _, s := range []string{"user", "public:local"} {
			if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","stream":"`+s+`"}`)); err != nil {
				t.Fatal(err)
			}
		}
		clients = append(clients, client{e.name + " WebSocket", wsEvents(ws)})
	}

	ctx := context.Background()
	home := fmt.Sprintf("%s:timeline:%d", ns, testenv.Alice)
	public := ns + ":timeline:public:local"
	// Subscriptions are not acknowledged: probe every channel until every
	// client has seen a probe on each of its channels.
	for _, c := range clients {
		want := 2
		if strings.Contains(c.name, "SSE") {
			want = 1
		}
		seen := map[string]bool{}
		testenv.Eventually(t, 15*time.Second, func() error {
			rdb.Publish(ctx, home, `{"event":"delete","payload":"probe-home"}`)
			rdb.Publish(ctx, public, `{"event":"delete","payload":"probe-public"}`)
			for {
				select {
				case ev := <-c.events:
					for _, p := range []string{"probe-home", "probe-public"} {
						if strings.Contains(ev, p) {
							seen[p] = true
						}
					}
					if len(seen) >= want {
						return nil
					}
				case <-time.After(200 * time.Millisecond):
					return fmt.Errorf("%s: saw %v", c.name, seen)
				}
			}
		})
	}
	status := func(id, extra string) string {
		return `{"id":"` + id + `","content":"\u003cp\u003eCaf\u00e9 \u2028 \ud83d\ude00\u003c/p\u003e","language":"en","n":1.50,` +
			`"account":{"id":"109000000000000002","username":"bob","acct":"bob"},"mentions":[],"media_attachments":[]` + extra + `}`
	}
	msgs := []struct{ channel, msg string }{
		{home, `{"event":"update","payload":` + status("11", "") + `}`},
		{home, `{"event":"update","payload":` + status("12", `,"x":1,"x":2`) + `}`}, // duplicate keys take the full parse
		{home, `{"event":"notification","payload":{"id":"9","type":"mention"},"queued_at":1}`},
		{public, `{"event":"update","payload":` + status("13", "") + `}`},
		{public, `{"event":"status.update","payload":` + status("14", `,"filtered":[]`) + `}`},
		{home, `{"event":"delete","payload":"last"}`},
		{public, `{"event":"delete","payload":"last"}`},
	}
	for _, m := range msgs {
		if err := rdb.Publish(ctx, m.channel, m.msg).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// Per client: the user SSE stream gets the four home events, the
	// public one the three public events, a WebSocket all seven.
	wants := []int{4, 3, 7}
	got := make([][]string, len(clients))
	for i, c := range clients {
		for len(got[i]) < wants[i%3] {
			select {
			case ev := <-c.events:
				if !strings.Contains(ev, "probe") {
					got[i] = append(got[i], ev)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("%s: timeout; got %q", c.name, got[i])
			}
		}
	}
	// The all-in-one edge holds no NATS subscription: its events came in
	// process.
	if p := get(t, "http://"+localAddr+"/metrics"); !strings.Contains(p.body, "\nspillway_nats_subscriptions 0\n") {
		t.Errorf("all-in-one edge holds NATS subscriptions:\n%s", grepLines(p.body, "spillway_nats_subscriptions"))
	}
	// Clients 0–2 are in process, 3–5 their NATS twins.
	for i := range 3 {
		a, b := got[i], got[i+3]
		// Filtered statuses may be written after a later pass-through
		// event, on either path (as in Mastodon): compare the frames as
		// multisets.
		if strings.Join(sorted(a), "\n") != strings.Join(sorted(b), "\n") {
			t.Errorf("%s and %s differ:\n%q\n%q", clients[i].name, clients[i+3].name, a, b)
		}
	}
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

func grepLines(s, substr string) string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
