package broker

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"

	"github.com/spillway/spillway/shared/bus"
	"github.com/spillway/spillway/shared/channel"
	"github.com/spillway/spillway/shared/testenv"
)

type harness struct {
	rdb  *redis.Client
	ns   string
	nc   *nats.Conn
	subj channel.Subjects
}

func start(t *testing.T, cfg Config) *harness {
	t.Helper()
	rdb, ns := testenv.Redis(t)
	_, nc := testenv.NATS(t)
	// The broker's own client carries a name so a test can kill its
	// connection like a Redis restart would.
	opts, err := redis.ParseURL(testenv.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	opts.ClientName = ns + "-broker"
	brdb := redis.NewClient(opts)
	t.Cleanup(func() { brdb.Close() })
	cfg.Namespace = ns
	b, err := New(cfg, brdb, nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return")
		}
	})
	h := &harness{rdb: rdb, ns: ns, nc: nc}
	h.waitSubscribed(t)
	return h
}

// waitSubscribed waits for the broker's pattern subscription in Redis.
func (h *harness) waitSubscribed(t *testing.T) {
	t.Helper()
	testenv.Eventually(t, 5*time.Second, func() error {
		n, err := h.rdb.PubSubNumPat(context.Background()).Result()
		if err != nil {
			return err
		}
		// Other tests' brokers share the server; look for ours by name.
		list, err := h.rdb.ClientList(context.Background()).Result()
		if err != nil {
			return err
		}
		if n == 0 || !strings.Contains(list, "name="+h.ns+"-broker") || !strings.Contains(list, "psub=1") {
			return fmt.Errorf("broker not subscribed yet")
		}
		return nil
	})
	// PSUBSCRIBE may be in flight on another client; give our own a moment.
	time.Sleep(50 * time.Millisecond)
}

// Messages are republished byte for byte, whatever they contain, on the
// subject of their channel with the namespace stripped.
func TestForwardsVerbatim(t *testing.T) {
	h := start(t, Config{})
	sub, err := h.nc.SubscribeSync(h.subj.Timelines())
	if err != nil {
		t.Fatal(err)
	}
	if err := h.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tests := []struct {
		channel, payload string
	}{
		{"timeline:public", `{"event":"update","payload":{"id":"1"}}`},
		{"timeline:hashtag:café:local", `{"event":"delete","payload":"1"}`},
		{"timeline:109000000000000001", "not json at all \x00\xff"},
		{"timeline:hashtag:", `{}`},
		{"timeline:list:5001", ""},
	}
	for _, tc := range tests {
		if err := h.rdb.Publish(ctx, h.ns+":"+tc.channel, tc.payload).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// Not ours: another namespace and a non-timeline channel.
	h.rdb.Publish(ctx, "other:timeline:public", "x")
	h.rdb.Publish(ctx, h.ns+":somethingelse", "x")
	for _, tc := range tests {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("waiting for %s: %v", tc.channel, err)
		}
		name, err := h.subj.Parse(m.Subject)
		if err != nil || string(name) != tc.channel || string(m.Data) != tc.payload {
			t.Fatalf("got %q %q (%v), want %q %q", name, m.Data, err, tc.channel, tc.payload)
		}
		if m.Header.Get(bus.HeaderReceived) == "" {
			t.Errorf("no %s header", bus.HeaderReceived)
		}
	}
	if m, err := sub.NextMsg(200 * time.Millisecond); err == nil {
		t.Fatalf("unexpected message on %s", m.Subject)
	}
}

// Interest reported by edges becomes `subscribed:` keys with Mastodon's TTL.
func TestInterestKeys(t *testing.T) {
	h := start(t, Config{})
	names := []string{"timeline:109000000000000001", "timeline:109000000000000001:notifications", "timeline:list:5001", "timeline:direct:109000000000000001"}
	for _, body := range bus.EncodeInterest(names, 1<<10) {
		if err := h.nc.Publish(h.subj.Interest(), body); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	testenv.Eventually(t, 5*time.Second, func() error {
		for _, n := range names {
			ttl, err := h.rdb.TTL(ctx, h.ns+":subscribed:"+n).Result()
			if err != nil {
				return err
			}
			if ttl < 1070*time.Second || ttl > 1080*time.Second {
				return fmt.Errorf("%s: ttl %v", n, ttl)
			}
			if v, _ := h.rdb.Get(ctx, h.ns+":subscribed:"+n).Result(); v != "1" {
				return fmt.Errorf("%s = %q", n, v)
			}
		}
		return nil
	})
}

// After the Redis connection drops (as in a Redis restart), the broker
// re-subscribes by itself and rewrites live `subscribed:` keys at once.
func TestSurvivesRedisReconnect(t *testing.T) {
	h := start(t, Config{})
	ctx := context.Background()
	name := "timeline:109000000000000002"
	h.nc.Publish(h.subj.Interest(), []byte(name))
	key := h.ns + ":subscribed:" + name
	testenv.Eventually(t, 5*time.Second, func() error { return h.rdb.Get(ctx, key).Err() })

	// Simulate a restart: keys lost, connection dropped.
	h.rdb.Del(ctx, key)
	list, err := h.rdb.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	killed := false
	for line := range strings.SplitSeq(list, "\n") {
		if strings.Contains(line, "name="+h.ns+"-broker") {
			id := strings.TrimPrefix(strings.Fields(line)[0], "id=")
			if err := h.rdb.Do(ctx, "CLIENT", "KILL", "ID", id).Err(); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	if !killed {
		t.Fatal("broker connection not found")
	}
	testenv.Eventually(t, 10*time.Second, func() error { return h.rdb.Get(ctx, key).Err() })

	sub, _ := h.nc.SubscribeSync(h.subj.Of(channel.Public(channel.ScopeAll, false)))
	h.nc.Flush()
	testenv.Eventually(t, 10*time.Second, func() error {
		h.rdb.Publish(ctx, h.ns+":timeline:public", "after")
		_, err := sub.NextMsg(200 * time.Millisecond)
		return err
	})
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Config{}, nil, nil); err == nil {
		t.Fatal("want error without clients")
	}
	rdb, _ := testenv.Redis(t)
	_, nc := testenv.NATS(t)
	if _, err := New(Config{Subjects: channel.Subjects{Prefix: "bad prefix"}}, rdb, nc); err == nil {
		t.Fatal("want error for a bad prefix")
	}
}

// A broker asks every edge for its interest when it starts and when its
// NATS connection comes back: it may have missed every announcement.
func TestAsksForInterest(t *testing.T) {
	_, nc := testenv.NATS(t)
	var subj channel.Subjects
	asked, err := nc.SubscribeSync(subj.Resync())
	if err != nil {
		t.Fatal(err)
	}
	rdb, ns := testenv.Redis(t)
	b, err := New(Config{Namespace: ns}, rdb, nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	if _, err := asked.NextMsg(5 * time.Second); err != nil {
		t.Fatalf("no request at start: %v", err)
	}
	if err := nc.ForceReconnect(); err != nil {
		t.Fatal(err)
	}
	if _, err := asked.NextMsg(5 * time.Second); err != nil {
		t.Fatalf("no request after a reconnect: %v", err)
	}
}
