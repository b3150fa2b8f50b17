package loadgen_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/spillway/spillway/cmd/loadtest/internal/fakestream"
	"github.com/spillway/spillway/cmd/loadtest/internal/loadgen"
)

func TestRampStopsAtFirstBadStep(t *testing.T) {
	tests := []struct {
		name        string
		bound       time.Duration
		inject      func(fakestream.Conn, uint64) fakestream.Action
		wantSteps   int
		wantGood    int // clients of the last good step; 0 = none
		wantVerdict string
	}{
		{
			name:  "loss appears beyond four clients",
			bound: 10 * time.Second,
			inject: func(c fakestream.Conn, _ uint64) fakestream.Action {
				if c.Ordinal > 4 {
					return fakestream.Drop
				}
				return fakestream.Deliver
			},
			wantSteps: 3, wantGood: 4, wantVerdict: "lost",
		},
		{
			name:      "p99 bound too tight for any step",
			bound:     time.Nanosecond,
			wantSteps: 1, wantVerdict: "p99",
		},
		{
			name:      "every step good",
			bound:     10 * time.Second,
			wantSteps: 4, wantGood: 8, wantVerdict: "ok",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fakestream.New(fakestream.Options{Inject: tt.inject})
			defer srv.Close()
			cfg := baseConfig(t, srv)
			cfg.Clients = 0
			cfg.Ramp = &loadgen.Ramp{Start: 2, Step: 2, Max: 8, P99Bound: tt.bound}
			cfg.Warmup = 20 * time.Millisecond
			rep, err := loadgen.Run(t.Context(), cfg, hub{srv})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Steps) != tt.wantSteps {
				t.Fatalf("%d steps, want %d", len(rep.Steps), tt.wantSteps)
			}
			last := rep.Steps[len(rep.Steps)-1]
			if !strings.Contains(last.Verdict, tt.wantVerdict) {
				t.Fatalf("last verdict %q, want %q", last.Verdict, tt.wantVerdict)
			}
			switch {
			case tt.wantGood == 0 && rep.LastGood != nil:
				t.Fatalf("last good %d, want none", rep.LastGood.TargetClients)
			case tt.wantGood > 0 && (rep.LastGood == nil || rep.LastGood.TargetClients != tt.wantGood):
				t.Fatalf("last good %+v, want %d clients", rep.LastGood, tt.wantGood)
			}
			for i, s := range rep.Steps {
				if s.Connected != s.TargetClients || s.Deliveries.Expected != uint64(s.Connected*ticks) {
					t.Fatalf("step %d: %d/%d connected, %d expected", i, s.Connected, s.TargetClients, s.Deliveries.Expected)
				}
			}
		})
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	srv := fakestream.New(fakestream.Options{})
	defer srv.Close()
	cfg := baseConfig(t, srv)
	cfg.MaxTicks = 0
	cfg.Rate = 50
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(300*time.Millisecond, cancel)
	rep, err := loadgen.Run(ctx, cfg, hub{srv})
	if err == nil || rep == nil {
		t.Fatalf("want a partial report and an error, got %v, %v", rep, err)
	}
}

// redisClient returns a client of the test Redis, or skips (fails under CI)
// when it is unreachable.
func redisClient(t *testing.T) *redis.Client {
	t.Helper()
	u := os.Getenv("STREAMING_TEST_REDIS_URL")
	if u == "" {
		u = "redis://127.0.0.1:6379/0"
	}
	opts, err := redis.ParseURL(u)
	if err != nil {
		t.Fatalf("STREAMING_TEST_REDIS_URL: %v", err)
	}
	c := redis.NewClient(opts)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		if os.Getenv("CI") != "" {
			t.Fatalf("redis unreachable under CI: %v", err)
		}
		t.Skipf("redis unreachable: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestRedisPublisherNamespaces(t *testing.T) {
	c := redisClient(t)
	ns := fmt.Sprintf("loadtest-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	sub := c.Subscribe(t.Context(), ns+":timeline:public", "timeline:public")
	defer func() { _ = sub.Close() }()
	if _, err := sub.Receive(t.Context()); err != nil { // subscription confirmation
		t.Fatal(err)
	}
	if _, err := sub.Receive(t.Context()); err != nil {
		t.Fatal(err)
	}
	pub := loadgen.NewRedisPublisher(c, ns)
	msgs := []loadgen.Message{{Channel: "timeline:public", Data: []byte(`{"event":"update","payload":{"id":"1"}}`)}}
	if err := pub.Publish(t.Context(), msgs); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	m, err := sub.ReceiveMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.Channel != ns+":timeline:public" || m.Payload != string(msgs[0].Data) {
		t.Fatalf("got %s %s", m.Channel, m.Payload)
	}
}
