package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/spillway/spillway/shared/testenv"
)

// leaseTTL and leaseRenew are short so that the tests wait little, and
// long enough that a loaded machine renews in time.
const (
	leaseTTL   = time.Second
	leaseRenew = 250 * time.Millisecond
)

// runLease runs a lease called id on key until stop is called (or the
// test ends); its logs go to the returned log.
func runLease(t *testing.T, rdb redis.UniversalClient, key, id string) (*lease, *jsonLog, func()) {
	t.Helper()
	log := &jsonLog{}
	l, err := newLease(LeaseConfig{TTL: leaseTTL, Renew: leaseRenew, Key: key, ID: id}, rdb, slog.New(slog.NewJSONHandler(log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.run(ctx, 0) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("lease run did not return")
		}
	}
	t.Cleanup(stop)
	return l, log, stop
}

// neverBoth samples two leases until until returns true, failing the test
// if both are ever held at once. The second is read first: seeing it held
// and then the first still held is a real overlap.
func neverBoth(t *testing.T, a, b *lease, timeout time.Duration, until func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !until() {
		if b.held() && a.held() {
			t.Fatal("both brokers hold the lease")
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", timeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// One of two brokers holds the lease; the other takes it over as soon as
// the first releases it, never both at once.
func TestLeaseHandover(t *testing.T) {
	rdb, ns := testenv.Redis(t)
	key := ns + ":lease"
	a, alog, stopA := runLease(t, rdb, key, "a")
	testenv.Eventually(t, 5*time.Second, func() error {
		if !a.held() {
			return errors.New("a does not hold the lease")
		}
		return nil
	})
	b, blog, _ := runLease(t, rdb, key, "b")
	blog.await(t, map[string]string{"msg": "broker is standby: events are received but another broker publishes them", "holder": "a"})
	if b.held() {
		t.Fatal("b holds the lease as well")
	}
	if got := b.leadership(); got.Role != "standby" || got.Holder != "a" || got.ID != "b" || got.Key != key {
		t.Fatalf("b's leadership %+v", got)
	}

	released := make(chan struct{})
	go func() { defer close(released); stopA() }()
	neverBoth(t, a, b, 5*time.Second, b.held)
	<-released
	alog.await(t, map[string]string{"msg": "broker became standby: it no longer publishes events", "reason": "stopping; lease released"})
	blog.await(t, map[string]string{"msg": "broker became leader: it publishes events"})
	if got := b.leadership(); got.Role != "leader" || got.Holder != "b" {
		t.Fatalf("b's leadership %+v", got)
	}
	if v, err := rdb.Get(context.Background(), key).Result(); err != nil || v != "b" {
		t.Fatalf("lease key = %q, %v", v, err)
	}
}

// A leader cut off from Redis stops publishing by its own clock before its
// lease expires in Redis, so the standby that then takes it never
// publishes alongside it; once Redis answers again the old leader finds
// the lease taken and stays standby.
func TestLeaseFencesPartitionedLeader(t *testing.T) {
	rdb, ns := testenv.Redis(t)
	key := ns + ":lease"
	proxy := testenv.NewProxy(t, rdb.Options().Addr)
	opts := *rdb.Options()
	opts.Addr = proxy.Addr()
	opts.MaxRetries = -1
	partitioned := redis.NewClient(&opts)
	t.Cleanup(func() { partitioned.Close() })

	a, alog, _ := runLease(t, partitioned, key, "a")
	testenv.Eventually(t, 5*time.Second, func() error {
		if !a.held() {
			return errors.New("a does not hold the lease")
		}
		return nil
	})
	b, _, _ := runLease(t, rdb, key, "b")
	proxy.Cut()
	neverBoth(t, a, b, 10*time.Second, b.held)
	if a.held() {
		t.Fatal("the partitioned leader still publishes")
	}
	proxy.Restore()
	alog.await(t, map[string]string{"msg": "broker lease answered again"})
	if a.held() || !b.held() {
		t.Fatalf("after the partition: a held %v, b held %v", a.held(), b.held())
	}
	if n := alog.count(map[string]string{"msg": "broker became leader: it publishes events"}); n != 1 {
		t.Fatalf("a became leader %d times", n)
	}
}

// A lease that vanishes before its time (Redis restarted or flushed) may
// still be believed in by its holder: the broker that takes it waits the
// TTL out before publishing.
func TestLeaseVanishedEarlyIsWaitedOut(t *testing.T) {
	rdb, ns := testenv.Redis(t)
	key := ns + ":lease"
	proxy := testenv.NewProxy(t, rdb.Options().Addr)
	opts := *rdb.Options()
	opts.Addr = proxy.Addr()
	opts.MaxRetries = -1
	partitioned := redis.NewClient(&opts)
	t.Cleanup(func() { partitioned.Close() })

	a, _, _ := runLease(t, partitioned, key, "a")
	testenv.Eventually(t, 5*time.Second, func() error {
		if !a.held() {
			return errors.New("a does not hold the lease")
		}
		return nil
	})
	b, blog, _ := runLease(t, rdb, key, "b")
	blog.await(t, map[string]string{"msg": "broker is standby: events are received but another broker publishes them"})
	// a cannot renew, or take the key back, once it is gone.
	proxy.Cut()
	if err := rdb.Del(context.Background(), key).Err(); err != nil {
		t.Fatal(err)
	}
	neverBoth(t, a, b, 10*time.Second, b.held)
	blog.await(t, map[string]string{"msg": "broker became leader: it publishes events", "publishing_in": leaseTTL.String()})
}

// Bad lease settings are refused.
func TestLeaseConfigValidated(t *testing.T) {
	rdb, _ := testenv.Redis(t)
	for _, cfg := range []LeaseConfig{
		{TTL: time.Millisecond, Key: "k"},
		{TTL: time.Second, Renew: time.Second, Key: "k"},
		{TTL: time.Second, Renew: -time.Second, Key: "k"},
		{TTL: time.Second},
	} {
		if _, err := newLease(cfg, rdb, slog.New(slog.DiscardHandler)); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
	l, err := newLease(LeaseConfig{TTL: 3 * time.Second, Key: "k"}, rdb, slog.New(slog.DiscardHandler))
	if err != nil || l.renew != time.Second || l.id == "" {
		t.Fatalf("defaults: %v %v %q", err, l.renew, l.id)
	}
	if l.held() {
		t.Fatal("a lease never run is held")
	}
	_ = fmt.Sprint(l.leadership())
}

// Two brokers with a lease on one NATS: every Redis message is published
// once, by the leader, while the standby counts what it leaves to it; when
// the leader stops, the standby publishes from then on. Both write the
// `subscribed:` keys.
func TestBrokersWithLeasePublishOnce(t *testing.T) {
	rdb, ns := testenv.Redis(t)
	_, nc := testenv.NATS(t)
	var subj = Config{}.Subjects
	sub, err := nc.SubscribeSync(subj.Timelines())
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	type running struct {
		b    *Broker
		log  *jsonLog
		reg  *prometheus.Registry
		stop func()
	}
	startBroker := func(id string) running {
		r := running{log: &jsonLog{}, reg: prometheus.NewRegistry()}
		b, err := New(Config{
			Namespace:  ns,
			Logger:     slog.New(slog.NewJSONHandler(r.log, nil)),
			Registerer: r.reg,
			Lease:      LeaseConfig{TTL: leaseTTL, Renew: leaseRenew, ID: id},
		}, rdb, nc)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- b.Run(ctx) }()
		r.b = b
		r.stop = sync.OnceFunc(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
		t.Cleanup(r.stop)
		return r
	}
	a := startBroker("a")
	a.log.await(t, map[string]string{"msg": "broker became leader: it publishes events"})
	b := startBroker("b")
	b.log.await(t, map[string]string{"msg": "broker is standby: events are received but another broker publishes them"})
	if l, ok := a.b.Leadership(); !ok || l.Role != "leader" || l.Key != ns+":spillway:broker:mastodon:leader" {
		t.Fatalf("a: %+v %v", l, ok)
	}

	// Both brokers' pattern subscriptions are in place once the standby
	// counts what it discards.
	ctx := context.Background()
	testenv.Eventually(t, 10*time.Second, func() error {
		rdb.Publish(ctx, ns+":timeline:public", "probe")
		if metricValue(t, b.reg, "spillway_broker_messages_discarded_total") == 0 {
			return errors.New("the standby discards nothing yet")
		}
		return nil
	})
	drain := func() {
		for {
			if _, err := sub.NextMsg(300 * time.Millisecond); err != nil {
				return
			}
		}
	}
	drain()
	const n = 50
	for i := range n {
		rdb.Publish(ctx, ns+":timeline:public", fmt.Sprint("event ", i))
	}
	for i := range n {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if want := fmt.Sprint("event ", i); string(m.Data) != want {
			t.Fatalf("got %q, want %q", m.Data, want)
		}
	}
	if m, err := sub.NextMsg(300 * time.Millisecond); err == nil {
		t.Fatalf("published twice: %q", m.Data)
	}
	if metricValue(t, a.reg, "spillway_broker_leader") != 1 || metricValue(t, b.reg, "spillway_broker_leader") != 0 {
		t.Fatal("spillway_broker_leader: want 1 on the leader, 0 on the standby")
	}

	// Interest reaches both; the keys are written whichever runs.
	name := "timeline:109000000000000003"
	nc.Publish(Config{}.Subjects.Interest(), []byte(name))
	for _, r := range []running{a, b} {
		testenv.Eventually(t, 5*time.Second, func() error {
			if len(r.b.live()) < 1 {
				return errors.New("interest not recorded")
			}
			return nil
		})
	}

	a.stop()
	b.log.await(t, map[string]string{"msg": "broker became leader: it publishes events"})
	drain()
	testenv.Eventually(t, 5*time.Second, func() error {
		rdb.Publish(ctx, ns+":timeline:public", "after")
		if _, err := sub.NextMsg(200 * time.Millisecond); err != nil {
			return fmt.Errorf("nothing published by the new leader: %w", err)
		}
		return nil
	})
	if metricValue(t, b.reg, "spillway_broker_leadership_changes_total") != 1 {
		t.Fatal("want one leadership change on b")
	}
}

// metricValue reads a counter or gauge without labels from reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		if c := m.GetCounter(); c != nil {
			return c.GetValue()
		}
		return m.GetGauge().GetValue()
	}
	t.Fatalf("no metric %s", name)
	return 0
}
