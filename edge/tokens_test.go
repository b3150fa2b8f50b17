package edge

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/spillway/spillway/edge/store"
	"github.com/spillway/spillway/shared/channel"
	"github.com/spillway/spillway/shared/testenv"
)

// countingStore counts token queries made through a real store.
type countingStore struct {
	Store
	auth chan string
}

func (c *countingStore) Authenticate(ctx context.Context, token string) (store.Identity, error) {
	c.auth <- token
	return c.Store.Authenticate(ctx, token)
}

// A revoked token keeps working from the cache only until Rails' kill
// arrives; after it, new connections are refused like Mastodon's.
func TestTokenCacheHonoursKill(t *testing.T) {
	var cs *countingStore
	h := newHarness(t, func(c *Config) {
		cs = &countingStore{Store: c.Store, auth: make(chan string, 100)}
		c.Store = cs
	})
	first := h.sse("/api/v1/streaming/user", "alice-read-token")
	h.sse("/api/v1/streaming/user", "alice-read-token")
	if n := len(cs.auth); n != 1 {
		t.Fatalf("%d token queries for two connections, want 1", n)
	}
	if n := testutil.ToFloat64(h.edge.metrics.tokenQueries); n != 1 {
		t.Fatalf("spillway_token_queries_total = %v, want 1", n)
	}
	mustExec(t, h, `UPDATE oauth_access_tokens SET revoked_at = now() WHERE id = 1`)
	h.publish(channel.AccessToken(1), `{"event":"kill"}`)
	first.expectEnd()
	testenv.Eventually(t, 5*time.Second, func() error {
		if n := h.edge.tokens.size(); n != 0 {
			return fmt.Errorf("%d cached tokens", n)
		}
		return nil
	})
	resp, body := h.get("GET", "/api/v1/streaming/user?access_token=alice-read-token", nil)
	if resp.StatusCode != 401 || body != `{"error":"Invalid access token"}` {
		t.Fatalf("after kill: %d %s", resp.StatusCode, body)
	}
}

// Suspension or disabling arrives on the account's system channel and
// evicts every cached token of that account.
func TestTokenCacheSystemKill(t *testing.T) {
	h := newHarness(t)
	h.sse("/api/v1/streaming/user", "alice-read-token")
	h.sse("/api/v1/streaming/user", "alice-statuses-token")
	if n := h.edge.tokens.size(); n != 2 {
		t.Fatalf("%d cached", n)
	}
	h.publish(channel.System(testenv.Alice), `{"event":"kill"}`)
	testenv.Eventually(t, 5*time.Second, func() error {
		if n := h.edge.tokens.size(); n != 0 {
			return fmt.Errorf("%d cached tokens", n)
		}
		return nil
	})
}

// A kill reaches the cache even when no connection of that token or account
// is open any more.
func TestTokenCacheKillWithoutConnection(t *testing.T) {
	for _, ch := range []channel.Name{channel.AccessToken(1), channel.System(testenv.Alice)} {
		h := newHarness(t)
		c := h.sse("/api/v1/streaming/user", "alice-read-token")
		_ = c.resp.Body.Close()
		h.waitChannels("eventsource", "user", 0)
		if n := h.edge.tokens.size(); n != 1 {
			t.Fatalf("%d cached tokens", n)
		}
		h.publish(ch, `{"event":"kill"}`)
		testenv.Eventually(t, 5*time.Second, func() error {
			if n := h.edge.tokens.size(); n != 0 {
				return fmt.Errorf("%s: %d cached tokens", ch, n)
			}
			return nil
		})
	}
}

// A kill that arrives while a lookup is in flight keeps its result out of
// the cache.
func TestTokenCacheKillDuringLookup(t *testing.T) {
	c := &tokenCache{ttl: time.Minute, max: 10, queries: func() {}, entries: map[string]*tokenEntry{}}
	c.remember("t", store.Identity{TokenID: 1}, 0)
	if c.size() != 1 {
		t.Fatal("not cached")
	}
	c.evict(channel.AccessToken(1))
	c.remember("t", store.Identity{TokenID: 1}, 0) // began before the kill
	if c.size() != 0 {
		t.Fatal("a lookup older than the kill was cached")
	}
}
