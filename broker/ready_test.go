package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/spillway/spillway/shared/channel"
	"github.com/spillway/spillway/shared/readiness"
	"github.com/spillway/spillway/shared/testenv"
)

// jsonLog collects JSON log lines.
type jsonLog struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *jsonLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// count returns how many lines carry every given key and value.
func (l *jsonLog) count(want map[string]string) int {
	l.mu.Lock()
	text := l.buf.String()
	l.mu.Unlock()
	n := 0
	for line := range strings.SplitSeq(text, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		ok := true
		for k, v := range want {
			ok = ok && fmt.Sprint(m[k]) == v
		}
		if ok {
			n++
		}
	}
	return n
}

func (l *jsonLog) await(t *testing.T, want map[string]string) {
	t.Helper()
	testenv.Eventually(t, 15*time.Second, func() error {
		if l.count(want) == 0 {
			l.mu.Lock()
			defer l.mu.Unlock()
			return fmt.Errorf("no line with %v in:\n%s", want, l.buf.String())
		}
		return nil
	})
}

// The Redis subscription's state is logged on each change, including a
// Redis unreachable from the start, and reported to the dependency that
// readiness probes read; forwarding resumes once Redis is back.
func TestRedisStateIsReported(t *testing.T) {
	rdb, ns := testenv.Redis(t)
	opts, err := redis.ParseURL(testenv.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.NewProxy(t, opts.Addr)
	proxy.Cut()
	opts.Addr = proxy.Addr()
	opts.DialTimeout = time.Second
	brdb := redis.NewClient(opts)
	t.Cleanup(func() { brdb.Close() })

	var log jsonLog
	logger := slog.New(slog.NewJSONHandler(&log, nil))
	dep := readiness.NewSet(logger).Add("redis", proxy.Addr())
	_, nc := testenv.NATS(t)
	b, err := New(Config{Namespace: ns, Logger: logger, Redis: dep}, brdb, nc)
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

	line := func(level, msg string) map[string]string {
		return map[string]string{"level": level, "msg": msg, "dependency": "redis", "address": proxy.Addr()}
	}
	log.await(t, line("WARN", "redis unreachable"))
	if st := dep.Status(); st.State != readiness.Down || st.Error == "" {
		t.Errorf("unreachable from the start: %+v", st)
	}
	proxy.Restore()
	log.await(t, line("INFO", "redis back"))
	proxy.Cut()
	log.await(t, line("WARN", "redis lost"))
	if dep.Up() {
		t.Error("up while cut")
	}
	proxy.Restore()
	testenv.Eventually(t, 15*time.Second, func() error {
		if n := log.count(line("INFO", "redis back")); n != 2 {
			return fmt.Errorf("%d lines saying redis is back, want 2", n)
		}
		return nil
	})
	if n := log.count(line("WARN", "redis unreachable")) + log.count(line("WARN", "redis lost")); n != 2 {
		t.Errorf("%d lines saying redis is away, want one per change (2)", n)
	}

	var subj channel.Subjects
	sub, err := nc.SubscribeSync(subj.Of(channel.Public(channel.ScopeAll, false)))
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	testenv.Eventually(t, 10*time.Second, func() error {
		rdb.Publish(context.Background(), ns+":timeline:public", "after")
		_, err := sub.NextMsg(200 * time.Millisecond)
		return err
	})
}
