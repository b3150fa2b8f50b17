package loadgen_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/spillway/spillway/cmd/loadtest/internal/fakestream"
	"github.com/spillway/spillway/cmd/loadtest/internal/loadgen"
	"github.com/spillway/spillway/shared/testenv"
)

func TestSoakChurnsAndSamples(t *testing.T) {
	tests := []struct {
		name    string
		streams []loadgen.Stream
		// metrics is the metrics path ("" = none: goroutines not sampled).
		metrics string
		sse     float64
		resub   time.Duration
		wantWS  bool
	}{
		{
			name:    "WebSockets swap streams, goroutines from /metrics",
			streams: []loadgen.Stream{{Name: "public", Weight: 1}, {Name: "user", Weight: 1}, {Name: "hashtag", Tag: "cats", Weight: 1}},
			metrics: "/metrics", sse: 0.3, resub: 30 * time.Millisecond, wantWS: true,
		},
		{
			name:    "SSE only, no metrics endpoint",
			streams: []loadgen.Stream{{Name: "public", Weight: 1}},
			metrics: "/nowhere", sse: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			accounts, tokens := instanceTokens(20)
			srv := fakestream.New(fakestream.Options{Tokens: accounts})
			defer srv.Close()
			cfg := baseConfig(t, srv)
			cfg.Clients, cfg.Tokens, cfg.Streams, cfg.SSERatio = 6, tokens, tt.streams, tt.sse
			cfg.MaxTicks, cfg.Rate = 0, 50
			cfg.Warmup, cfg.Duration = 200*time.Millisecond, 1500*time.Millisecond
			cfg.ServerPID = os.Getpid() // the fake runs in this process
			mu, err := url.Parse(srv.URL + tt.metrics)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Soak = &loadgen.Soak{
				ChurnRate: 40, ChurnLifetime: 200 * time.Millisecond, Resubscribe: tt.resub,
				SampleInterval: 100 * time.Millisecond, MetricsURL: mu, Tolerance: 0.1, Seed: 1,
				MinSamples: 6,
			}
			var progress bytes.Buffer
			cfg.Progress, cfg.ProgressInterval = &progress, time.Hour
			rep, err := loadgen.Run(t.Context(), cfg, hub{srv})
			if err != nil {
				t.Fatal(err)
			}
			sk, st := rep.Soak, rep.Steps[0]
			if rep.Mode != "soak" || sk == nil {
				t.Fatalf("mode %s, soak %+v", rep.Mode, sk)
			}
			// The steady clients are measured as in any window.
			if st.Counted != 6 || st.Deliveries.Expected == 0 || st.Deliveries.Lost != 0 || st.Dropped != 0 {
				t.Fatalf("steady clients %+v", st)
			}
			c := sk.Churn
			if c.Connected < 4 || c.Failed != 0 || c.Dropped != 0 || c.Graceful+c.Abrupt+c.Stopped != c.Connected || c.Events == 0 {
				t.Fatalf("churn %+v", c)
			}
			if tt.wantWS {
				if c.Subscribes <= c.Connected/2 || c.Unsubscribes == 0 || c.Graceful == 0 || srv.Unsubscribes() != int(c.Unsubscribes) {
					t.Fatalf("churn %+v; the fake saw %d unsubscribes", c, srv.Unsubscribes())
				}
			} else if c.Subscribes != 0 || c.Graceful != 0 {
				t.Fatalf("SSE churn %+v", c)
			}
			if len(sk.Samples) < 6 || sk.RSS == nil || sk.FDs == nil || sk.Verdict == "" {
				t.Fatalf("%d samples, trends %+v %+v, verdict %q", len(sk.Samples), sk.RSS, sk.FDs, sk.Verdict)
			}
			for _, s := range sk.Samples {
				if s.RSSKB == 0 || s.FDs <= 0 || (s.Goroutines > 0) != (tt.metrics == "/metrics") {
					t.Fatalf("sample %+v", s)
				}
			}
			if (sk.Goroutines != nil) != (tt.metrics == "/metrics") || sk.After.ChurnLive != 0 {
				t.Fatalf("goroutine trend %+v, after %+v", sk.Goroutines, sk.After)
			}
			if tt.metrics != "/metrics" && !strings.Contains(progress.String(), "goroutines not sampled") {
				t.Fatalf("progress does not say goroutines are not sampled:\n%s", progress.String())
			}
			// Every churn client left: the fake holds only the steady ones.
			testenv.Eventually(t, 5*time.Second, func() error {
				sse, ws, _, _ := srv.Stats()
				n := 0
				for _, ch := range []string{"timeline:public", "timeline:hashtag:cats"} {
					n += srv.Subscribers(ch)
				}
				for id := range 20 {
					n += srv.Subscribers(fmt.Sprint("timeline:", 201+id))
				}
				if n > 6 {
					return fmt.Errorf("%d subscriptions left (%d sse, %d ws seen)", n, sse, ws)
				}
				return nil
			})
			var table bytes.Buffer
			if err := rep.WriteTable(&table); err != nil {
				t.Fatal(err)
			}
			for _, s := range []string{"churn", "rss", "verdict"} {
				if !strings.Contains(table.String(), s) {
					t.Fatalf("table lacks %q:\n%s", s, table.String())
				}
			}
			if _, err := json.Marshal(rep); err != nil {
				t.Fatal(err)
			}
			t.Logf("report:\n%s", table.String())
		})
	}
}

func TestSoakRejectsBadConfigs(t *testing.T) {
	srv := fakestream.New(fakestream.Options{})
	defer srv.Close()
	tests := []struct {
		name   string
		mutate func(*loadgen.Config)
		want   string
	}{
		{"no server pid", func(c *loadgen.Config) { c.ServerPID = 0 }, "-server-pid"},
		{"negative churn", func(c *loadgen.Config) { c.Soak.ChurnRate = -1 }, "-churn-rate"},
		{"no lifetime", func(c *loadgen.Config) { c.Soak.ChurnLifetime = 0 }, "-churn-lifetime"},
		{"remote metrics", func(c *loadgen.Config) { c.Soak.MetricsURL = &url.URL{Scheme: "http", Host: "192.0.2.1"} }, "non-loopback"},
		{"too many samples", func(c *loadgen.Config) { c.Duration = time.Hour; c.Soak.SampleInterval = time.Millisecond }, "samples"},
		{"soak ramp", func(c *loadgen.Config) { c.Ramp = &loadgen.Ramp{Start: 1, Step: 1, Max: 2, P99Bound: time.Second} }, "ramp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := baseConfig(t, srv)
			cfg.ServerPID = os.Getpid()
			cfg.Soak = &loadgen.Soak{ChurnRate: 1, ChurnLifetime: time.Second, SampleInterval: time.Second}
			tt.mutate(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}
