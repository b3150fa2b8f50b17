package loadgen

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/spillway/spillway/shared/benchdata/payload"
)

func TestFollowerCounts(t *testing.T) {
	tests := []struct {
		name string
		n    int
		zipf float64
		mean float64
	}{
		{"uniform", 100, 0, 7},
		{"zipf 1, the busiest capped", 1500, 1, 20},
		{"steep zipf, many capped", 50, 3, 20},
		{"everyone follows everyone", 10, 1, 9},
		{"nobody follows", 10, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := zipfWeights(tt.n, tt.zipf, rand.New(rand.NewPCG(1, 2)))
			got := followerCounts(w, tt.mean)
			sum := 0.0
			for a, f := range got {
				if f < 0 || f > float64(tt.n-1)+1e-9 {
					t.Fatalf("account %d: %v followers", a, f)
				}
				sum += f
			}
			if m := sum / float64(tt.n); math.Abs(m-tt.mean) > 1e-6*math.Max(1, tt.mean) {
				t.Fatalf("mean %v, want %v", m, tt.mean)
			}
			// More popular never means fewer followers.
			for a := range w {
				for b := range w {
					if w[a] > w[b] && got[a] < got[b]-1e-9 {
						t.Fatalf("weights %v > %v but followers %v < %v", w[a], w[b], got[a], got[b])
					}
				}
			}
		})
	}
}

func TestZipfWeights(t *testing.T) {
	w := zipfWeights(1000, 1, rand.New(rand.NewPCG(5, 5)))
	s := slices.Clone(w)
	slices.Sort(s)
	slices.Reverse(s)
	h := 0.0
	for k := 1; k <= 1000; k++ {
		h += 1 / float64(k)
		if math.Abs(s[k-1]-1/float64(k)) > 1e-12 {
			t.Fatalf("rank %d weight %v", k, s[k-1])
		}
	}
	if s[0] != 1 || slices.Equal(w, s) {
		t.Fatal("weights are not a shuffled 1/rank")
	}
	cum := cumulative(w)
	if math.Abs(cum[999]-h) > 1e-9 {
		t.Fatalf("total %v, want H(1000) %v", cum[999], h)
	}
}

func TestDraw(t *testing.T) {
	cum := cumulative([]float64{1, 0, 3})
	rng := rand.New(rand.NewPCG(1, 1))
	counts := make([]int, 3)
	for range 40_000 {
		counts[draw(cum, rng)]++
	}
	if counts[1] != 0 || math.Abs(float64(counts[2])/float64(counts[0])-3) > 0.15 {
		t.Fatalf("counts %v, want about 1:0:3", counts)
	}
}

// planFor builds an instance plan for n accounts over streams without
// connecting anything.
func planFor(t *testing.T, n int, streams string, in Instance) *runState {
	t.Helper()
	ss, err := ParseStreams(streams)
	if err != nil {
		t.Fatal(err)
	}
	var tokens []Token
	for i := range n {
		tokens = append(tokens, Token{Value: fmt.Sprint("t", i), AccountID: fmt.Sprint(1000 + i)})
	}
	u, _ := url.Parse("http://127.0.0.1:1")
	cfg := &Config{BaseURL: u, Clients: n, Streams: ss, Tokens: tokens, Rate: 1000, Instance: &in}
	r, err := newRunState(t.Context(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.addClients(n)
	if err := r.buildPlan(); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestInstancePlan(t *testing.T) {
	tests := []struct {
		name    string
		n       int
		streams string
		in      Instance
		// topShare is the busiest account's expected share of statuses.
		topShare float64
	}{
		{"the issue's row: one timeline per event", 1500, "user", Instance{Arrivals: Even}, 1.0 / 1500},
		{"zipf 1 with fan-out and notifications", 1000, "user=8,user:notification=1,public=1",
			Instance{Zipf: 1, Followers: 20, PublicShare: 0.4, TaggedShare: 0.3, Notifications: 0.5, Seed: 7}, 0},
		{"hashtags from the mix", 200, "user=3,hashtag:Cats=1,hashtag:local:dogs=1",
			Instance{Zipf: 0.8, Followers: 5, PublicShare: 1, TaggedShare: 1, Seed: 3}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := planFor(t, tt.n, tt.streams, tt.in)
			p := r.plan
			m := p.model
			if tt.in.Zipf == 1 {
				h := 0.0
				for k := 1; k <= tt.n; k++ {
					h += 1 / float64(k)
				}
				tt.topShare = 1 / h
			}
			if tt.topShare > 0 && math.Abs(m.TopAuthorShare-tt.topShare) > 1e-9 {
				t.Fatalf("top author share %v, want %v", m.TopAuthorShare, tt.topShare)
			}
			if math.Abs(m.FollowersMean-tt.in.Followers) > 0.05*tt.in.Followers+0.01 {
				t.Fatalf("followers mean %v, want about %v", m.FollowersMean, tt.in.Followers)
			}
			// Home targets: the author (if streaming home) and followers,
			// each a distinct user timeline.
			for a := range tt.n {
				home := p.home[p.homeOff[a]:p.homeOff[a+1]]
				seen := map[*channel]bool{}
				for _, ch := range home {
					if seen[ch] || ch.notify || !strings.HasPrefix(ch.name, "timeline:") || strings.Count(ch.name, ":") != 1 {
						t.Fatalf("account %d: bad home target %q", a, ch.name)
					}
					seen[ch] = true
				}
				if self := r.clients[a]; self.stream.Name == "user" && (len(home) == 0 || home[0] != self.ch) {
					t.Fatalf("account %d streams home but its own statuses skip it", a)
				}
			}
			for _, ch := range p.recips {
				if !ch.notify || !strings.HasSuffix(ch.name, ":notifications") {
					t.Fatalf("recipient channel %q", ch.name)
				}
			}
			// The exact expectation matches what the actions publish.
			const draws = 40_000
			var events, notes int
			var buf []*channel
			for range draws {
				var note bool
				buf, note = p.action(buf[:0])
				events += len(buf)
				if note {
					notes++
				}
			}
			if got := float64(events) / draws; math.Abs(got-m.EventsPerAction) > 0.03*m.EventsPerAction {
				t.Fatalf("%.3f events per action, model says %.3f", got, m.EventsPerAction)
			}
			if want := tt.in.Notifications / (1 + tt.in.Notifications); math.Abs(float64(notes)/draws-want) > 0.01 {
				t.Fatalf("notification share %.3f, want %.3f", float64(notes)/draws, want)
			}
			if math.Abs(m.ActionsPerSecond*m.EventsPerAction-r.cfg.Rate) > 1e-6 {
				t.Fatalf("actions/s %v × events/action %v != rate %v", m.ActionsPerSecond, m.EventsPerAction, r.cfg.Rate)
			}
			// Same seed, same traffic; another seed, other traffic.
			fresh := planFor(t, tt.n, tt.streams, tt.in).plan
			again := planFor(t, tt.n, tt.streams, tt.in).plan
			other := tt.in
			other.Seed++
			diff := planFor(t, tt.n, tt.streams, other).plan
			same, differ := true, false
			for range 200 {
				x, _ := fresh.action(nil)
				y, _ := again.action(nil)
				z, _ := diff.action(nil)
				same = same && slices.EqualFunc(x, y, func(a, b *channel) bool { return a.name == b.name })
				differ = differ || !slices.EqualFunc(x, z, func(a, b *channel) bool { return a.name == b.name })
			}
			if !same || !differ {
				t.Fatalf("same seed same traffic: %v; other seed other traffic: %v", same, differ)
			}
		})
	}
}

func TestArrivalGaps(t *testing.T) {
	for _, arr := range []Arrivals{Even, Poisson} {
		t.Run(arr.String(), func(t *testing.T) {
			r := planFor(t, 10, "user", Instance{Arrivals: arr, Seed: 4})
			p := r.plan
			p.setRate(500) // 500 actions/s: one event each
			const n = 20_000
			sum, sq := 0.0, 0.0
			for range n {
				g := p.gap()
				if g < 0 {
					t.Fatalf("negative gap %v", g)
				}
				if arr == Even && math.Abs(g-1.0/500) > 1e-12 {
					t.Fatalf("even gap %v", g)
				}
				sum += g
				sq += g * g
			}
			mean := sum / n
			cv := math.Sqrt(sq/n-mean*mean) / mean
			wantCV := 0.0
			if arr == Poisson {
				wantCV = 1 // exponential gaps
			}
			if math.Abs(mean-1.0/500) > 0.02/500 || math.Abs(cv-wantCV) > 0.03 {
				t.Fatalf("mean gap %v (want %v), coefficient of variation %.3f (want %.0f)", mean, 1.0/500, cv, wantCV)
			}
		})
	}
	if _, err := ParseArrivals("burst"); err == nil {
		t.Fatal("bad -arrivals accepted")
	}
}

func TestAppendNotification(t *testing.T) {
	gen := payload.NewGenerator(payload.DefaultAuthor(), 3500)
	for _, probe := range []bool{false, true} {
		out := appendNotification([]byte("prefix"), 42, gen.Append(nil, 42, 1_700_000_000_123_456_789, probe))
		msg, ok := strings.CutPrefix(string(out), "prefix")
		if !ok {
			t.Fatal("dst not kept")
		}
		var env struct {
			Event   string `json:"event"`
			Payload struct {
				ID      string `json:"id"`
				Type    string `json:"type"`
				Account struct{ Acct string }
				Status  json.RawMessage `json:"status"`
			} `json:"payload"`
		}
		if err := json.Unmarshal([]byte(msg), &env); err != nil {
			t.Fatalf("not JSON: %v", err)
		}
		if env.Event != "notification" || env.Payload.ID != "42" || env.Payload.Type != "mention" || env.Payload.Account.Acct != "alice" {
			t.Fatalf("envelope %+v", env)
		}
		info, ok := payload.Decode(env.Payload.Status)
		if !ok || info.Seq != 42 || info.SentNS != 1_700_000_000_123_456_789 || info.Probe != probe {
			t.Fatalf("status markers %+v %v", info, ok)
		}
		// What a server delivers (the whole payload) decodes the same.
		if whole, ok := payload.Decode([]byte(msg)); !ok || whole != info {
			t.Fatalf("payload markers %+v %v", whole, ok)
		}
	}
	if got := appendNotification(nil, 1, []byte(`{"event":"delete","payload":"1"}`)); len(got) != 0 {
		t.Fatalf("not a generated update, yet appended %q", got)
	}
}
