package loadgen_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spillway/spillway/cmd/loadtest/internal/fakestream"
	"github.com/spillway/spillway/cmd/loadtest/internal/loadgen"
	"github.com/spillway/spillway/shared/benchdata/payload"
)

// recordingHub feeds the fake server like hub and independently counts
// what a Redis subscriber would have seen: the marked (non-probe) events
// per channel, and how many of the fake's connections were subscribed to
// each channel when its first event arrived.
type recordingHub struct {
	hub
	t  *testing.T
	mu sync.Mutex
	// events and subs are per channel; kinds records event names per
	// channel kind ("home", "notifications", "public").
	events map[string]uint64
	subs   map[string]int
	kinds  map[string]map[string]int
}

func newRecordingHub(t *testing.T, s *fakestream.Server) *recordingHub {
	return &recordingHub{hub: hub{s}, t: t, events: map[string]uint64{}, subs: map[string]int{}, kinds: map[string]map[string]int{}}
}

func channelKind(ch string) string {
	switch {
	case strings.HasSuffix(ch, ":notifications"):
		return "notifications"
	case strings.HasPrefix(ch, "timeline:public"), strings.HasPrefix(ch, "timeline:hashtag:"):
		return "public"
	}
	return "home"
}

func (h *recordingHub) Publish(ctx context.Context, msgs []loadgen.Message) error {
	h.mu.Lock()
	for _, m := range msgs {
		info, ok := payload.Decode(m.Data)
		if !ok {
			h.t.Errorf("unmarked message on %s", m.Channel)
			continue
		}
		if info.Probe {
			continue
		}
		var env struct {
			Event   string          `json:"event"`
			Payload json.RawMessage `json:"payload"`
		}
		if err := json.Unmarshal(m.Data, &env); err != nil {
			h.t.Errorf("message on %s is not JSON: %v", m.Channel, err)
			continue
		}
		if _, seen := h.subs[m.Channel]; !seen {
			h.subs[m.Channel] = h.s.Subscribers(m.Channel)
		}
		h.events[m.Channel]++
		k := channelKind(m.Channel)
		if h.kinds[k] == nil {
			h.kinds[k] = map[string]int{}
		}
		h.kinds[k][env.Event]++
	}
	h.mu.Unlock()
	return h.hub.Publish(ctx, msgs)
}

// owed is the deliveries the recorded events owe the subscribed clients.
func (h *recordingHub) owed() (owed, events uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch, n := range h.events {
		owed += n * uint64(h.subs[ch])
		events += n
	}
	return owed, events
}

func instanceTokens(n int) (map[string]string, []loadgen.Token) {
	accounts := map[string]string{}
	var tokens []loadgen.Token
	for i := 1; i <= n; i++ {
		tok, id := fmt.Sprintf("tok-%d", i), fmt.Sprint(200+i)
		accounts[tok] = id
		tokens = append(tokens, loadgen.Token{Value: tok, AccountID: id})
	}
	return accounts, tokens
}

func TestInstanceScenario(t *testing.T) {
	const actions = 150
	tests := []struct {
		name     string
		accounts int
		streams  string
		instance loadgen.Instance
		ws       bool
		inject   func(fakestream.Conn, uint64) fakestream.Action
		// events, when positive, is the exact number of events published.
		events        uint64
		notifications bool
		public        bool
	}{
		{
			name:     "one event on one user's timeline per action (1 client per account, even spacing)",
			accounts: 24, streams: "user",
			instance: loadgen.Instance{Arrivals: loadgen.Even, Seed: 3},
			events:   actions,
		},
		{
			name:     "followers, notifications, public and hashtag statuses, subscribe messages",
			accounts: 40, streams: "user=6,user:notification=1,public=1,hashtag:Cats=1,hashtag:local:cats=1",
			instance: loadgen.Instance{Zipf: 1, Followers: 5, PublicShare: 0.5, TaggedShare: 0.5, Notifications: 0.5, Seed: 1},
			ws:       true, notifications: true, public: true,
		},
		{
			name:     "skewed activity with busy accounts, media and local public streams",
			accounts: 30, streams: "user=4,public:media=1,public:local:media=1,public:local=1",
			instance:      loadgen.Instance{Zipf: 2, Followers: 10, PublicShare: 1, Notifications: 0.2, Seed: 9},
			notifications: true, public: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Every case also loses and duplicates a few deliveries, which
			// the tool must count exactly.
			var dropped, duplicated atomic.Uint64
			inject := func(c fakestream.Conn, seq uint64) fakestream.Action {
				switch {
				case c.SSE && seq%9 == 0:
					dropped.Add(1)
					return fakestream.Drop
				case !c.SSE && c.Event == "notification" && seq%2 == 0:
					dropped.Add(1)
					return fakestream.Drop
				case !c.SSE && seq%11 == 0:
					duplicated.Add(1)
					return fakestream.Duplicate
				}
				return fakestream.Deliver
			}
			accounts, tokens := instanceTokens(tt.accounts)
			srv := fakestream.New(fakestream.Options{Tokens: accounts, Inject: inject})
			defer srv.Close()
			streams, err := loadgen.ParseStreams(tt.streams)
			if err != nil {
				t.Fatal(err)
			}
			cfg := baseConfig(t, srv)
			cfg.Clients, cfg.Tokens, cfg.Streams, cfg.WSSubscribe = tt.accounts, tokens, streams, tt.ws
			// Two tokens of one account: still one client per account.
			cfg.Tokens = append(cfg.Tokens, loadgen.Token{Value: "tok-1", AccountID: "201"})
			cfg.Instance = &tt.instance
			cfg.Rate = 5_000
			cfg.MaxTicks = actions
			h := newRecordingHub(t, srv)
			rep, err := loadgen.Run(t.Context(), cfg, h)
			if err != nil {
				t.Fatal(err)
			}
			st := rep.Steps[0]
			if rep.Mode != "instance" || rep.Instance == nil || st.Connected != tt.accounts || st.Counted != tt.accounts {
				t.Fatalf("mode %s, model %+v, clients %+v", rep.Mode, rep.Instance, st)
			}
			owed, events := h.owed()
			p := st.Publish
			if p.Ticks != actions || p.Statuses+p.Notifications != actions || p.Events != events ||
				(tt.events > 0 && events != tt.events) {
				t.Fatalf("publish %+v; hub saw %d events", p, events)
			}
			if (p.Notifications > 0) != tt.notifications || p.ScheduleLagMS == nil || p.ScheduleLagMS.Count != actions {
				t.Fatalf("publish %+v", p)
			}
			d := st.Deliveries
			if d.Expected != owed || d.Lost != dropped.Load() || d.Duplicates != duplicated.Load() ||
				d.Unique+d.Lost != d.Expected || d.Misrouted != 0 || d.Foreign != 0 || d.Unexpected != 0 {
				t.Fatalf("deliveries %+v; owed %d, dropped %d, duplicated %d", d, owed, dropped.Load(), duplicated.Load())
			}
			if d.Lost == 0 {
				t.Fatal("no loss injected: the case does not test loss accounting")
			}
			// Rails' rules: home and notification events go only to
			// timelines somebody streams, each kind with its own event.
			h.mu.Lock()
			for ch, n := range h.subs {
				if channelKind(ch) != "public" && n == 0 {
					t.Errorf("%s published without a subscriber", ch)
				}
			}
			if k := h.kinds["home"]; len(k) != 1 || k["update"] == 0 {
				t.Errorf("home events %v", k)
			}
			if k := h.kinds["notifications"]; (len(k) == 1 && k["notification"] > 0) != tt.notifications {
				t.Errorf("notification events %v", k)
			}
			if k := h.kinds["public"]; (len(k) == 1 && k["update"] > 0) != tt.public {
				t.Errorf("public events %v", k)
			}
			h.mu.Unlock()
			var table bytes.Buffer
			if err := rep.WriteTable(&table); err != nil {
				t.Fatal(err)
			}
			for _, s := range []string{"events per status", "schedule lag ms", "notifications"} {
				if !strings.Contains(table.String(), s) {
					t.Fatalf("table lacks %q:\n%s", s, table.String())
				}
			}
			t.Logf("report:\n%s", table.String())
		})
	}
}

// TestInstanceWindowIsTimed runs without an action limit: the window ends
// with its duration and what the schedule published is all accounted for.
func TestInstanceWindowIsTimed(t *testing.T) {
	accounts, tokens := instanceTokens(10)
	srv := fakestream.New(fakestream.Options{Tokens: accounts})
	defer srv.Close()
	cfg := baseConfig(t, srv)
	cfg.Clients, cfg.Tokens = 10, tokens
	cfg.Streams = []loadgen.Stream{{Name: "user", Weight: 1}}
	cfg.Instance = &loadgen.Instance{Followers: 2, Notifications: 1, Seed: 2}
	cfg.MaxTicks, cfg.Rate = 0, 400
	cfg.Warmup, cfg.Duration = 100*time.Millisecond, 300*time.Millisecond
	rep, err := loadgen.Run(t.Context(), cfg, hub{srv})
	if err != nil {
		t.Fatal(err)
	}
	st := rep.Steps[0]
	if st.Publish.Events == 0 || st.Deliveries.Expected == 0 || st.Deliveries.Lost != 0 ||
		st.Deliveries.Unique != st.Deliveries.Expected {
		t.Fatalf("step %+v", st)
	}
}

func TestInstanceRejectsBadConfigs(t *testing.T) {
	accounts, tokens := instanceTokens(4)
	srv := fakestream.New(fakestream.Options{Tokens: accounts})
	defer srv.Close()
	tests := []struct {
		name   string
		mutate func(*loadgen.Config)
		want   string
	}{
		{"direct stream", func(c *loadgen.Config) { c.Streams = []loadgen.Stream{{Name: "direct", Weight: 1}} }, "never receives events"},
		{"remote public stream", func(c *loadgen.Config) { c.Streams = []loadgen.Stream{{Name: "public:remote", Weight: 1}} }, "never receives events"},
		{"more clients than accounts", func(c *loadgen.Config) { c.Clients = 5 }, "distinct accounts"},
		{"no tokens", func(c *loadgen.Config) { c.Tokens = nil }, "tokens"},
		{"zipf out of range", func(c *loadgen.Config) { c.Instance.Zipf = -1 }, "-zipf"},
		{"public share above 1", func(c *loadgen.Config) { c.Instance.PublicShare = 1.5 }, "-public"},
		{"rate too high", func(c *loadgen.Config) { c.Rate = 2e6 }, "-rate"},
		{"instance ramp", func(c *loadgen.Config) { c.Ramp = &loadgen.Ramp{Start: 1, Step: 1, Max: 2, P99Bound: time.Second} }, "ramp"},
		{"too many followers", func(c *loadgen.Config) { c.Instance.Followers = 4 }, "-followers"},
		{"nobody to notify", func(c *loadgen.Config) {
			c.Streams = []loadgen.Stream{{Name: "public", Weight: 1}}
			c.Instance.Notifications = 1
		}, "-notifications"},
		{"nothing published", func(c *loadgen.Config) { c.Streams = []loadgen.Stream{{Name: "public", Weight: 1}} }, "publishes nothing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := baseConfig(t, srv)
			cfg.Clients, cfg.Tokens = 4, tokens
			cfg.Streams = []loadgen.Stream{{Name: "user", Weight: 1}}
			cfg.Instance = &loadgen.Instance{}
			tt.mutate(&cfg)
			_, err := loadgen.Run(t.Context(), cfg, hub{srv})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}
