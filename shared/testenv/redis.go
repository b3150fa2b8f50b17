package testenv

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultRedisURL is used when STREAMING_TEST_REDIS_URL is unset.
const DefaultRedisURL = "redis://127.0.0.1:6379/0"

// redisCleanupTimeout bounds the key deletion at the end of a test.
const redisCleanupTimeout = 10 * time.Second

// Redis returns a client for the Redis at STREAMING_TEST_REDIS_URL and a
// namespace unique to this test (use it as REDIS_NAMESPACE; keys and channels
// are then "<namespace>:..."). When the test ends every key matching
// "<namespace>:*" is deleted and the client is closed.
func Redis(t testing.TB) (rdb *redis.Client, namespace string) {
	t.Helper()
	raw := RedisURL(t)
	opt, err := redis.ParseURL(raw)
	if err != nil {
		t.Fatalf("testenv: STREAMING_TEST_REDIS_URL: %v", err)
	}
	namespace = "spillwaytest" + randomHex(t, 8)
	rdb = redis.NewClient(opt)
	t.Cleanup(func() {
		// The test may have closed its client; sweep with a fresh one.
		_ = rdb.Close()
		sweeper := redis.NewClient(opt)
		defer sweeper.Close()
		ctx, cancel := context.WithTimeout(context.Background(), redisCleanupTimeout)
		defer cancel()
		if err := deleteNamespace(ctx, sweeper, namespace); err != nil {
			t.Errorf("testenv: deleting Redis keys under %s: %v", namespace, err)
		}
	})
	return rdb, namespace
}

// RedisURL returns the URL of the test Redis after checking that it answers
// (skipping or failing the test otherwise). It carries no namespace: tests
// that configure a server with it should also take a namespace from Redis(t),
// which cleans up after them.
func RedisURL(t testing.TB) string {
	t.Helper()
	raw := envOr("STREAMING_TEST_REDIS_URL", DefaultRedisURL)
	opt, err := redis.ParseURL(raw)
	if err != nil {
		t.Fatalf("testenv: STREAMING_TEST_REDIS_URL: %v", err)
	}
	opt.DialTimeout = probeTimeout
	opt.MaxRetries = -1
	probe := redis.NewClient(opt)
	defer probe.Close()
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	if err := probe.Ping(ctx).Err(); err != nil {
		unavailable(t, "redis", redact(raw), "STREAMING_TEST_REDIS_URL", err)
	}
	return raw
}

// deleteNamespace removes every key under ns with SCAN, which unlike KEYS
// does not block a Redis shared with other tests.
func deleteNamespace(ctx context.Context, rdb *redis.Client, ns string) error {
	iter := rdb.Scan(ctx, 0, ns+":*", 1000).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 500 {
			if err := rdb.Del(ctx, batch...).Err(); err != nil {
				return fmt.Errorf("del: %w", err)
			}
			batch = batch[:0]
		}
	}
	if err := iter.Err(); err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	if len(batch) > 0 {
		if err := rdb.Del(ctx, batch...).Err(); err != nil {
			return fmt.Errorf("del: %w", err)
		}
	}
	return nil
}
