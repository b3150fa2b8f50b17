package edge

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/spillway/spillway/edge/store"
)

// tokenCache answers token lookups (§5.2) so that a reconnect storm costs
// Postgres at most one query per distinct token: concurrent lookups of one
// token share a query, and a valid result is kept for a short while.
//
// Revocation stays as fresh as Mastodon's: a cached token holds the same
// two system subscriptions a connection does (§5.5), and the `kill` Rails
// publishes when it revokes the token, disables the user or suspends the
// account evicts the entry, so the next connection queries Postgres again.
// Invalid tokens are never cached.
type tokenCache struct {
	edge    *Edge
	store   Store
	timeout time.Duration
	ttl     time.Duration
	max     int
	group   singleflight.Group

	mu      sync.Mutex
	entries map[string]*tokenEntry
}

type tokenEntry struct {
	id      store.Identity
	expires time.Time
	watch   *session // holds the system subscriptions; its kill evicts
}

func (c *tokenCache) lookup(ctx context.Context, token string) (store.Identity, error) {
	if c.ttl > 0 {
		c.mu.Lock()
		if e := c.entries[token]; e != nil && time.Now().Before(e.expires) {
			c.mu.Unlock()
			return e.id, nil
		}
		c.mu.Unlock()
	}
	v, err, _ := c.group.Do(token, func() (any, error) {
		// The first caller's cancellation must not fail the others
		// waiting on the same query.
		qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
		defer cancel()
		c.edge.metrics.tokenQueries.Inc()
		id, err := c.store.Authenticate(qctx, token)
		if err == nil && c.ttl > 0 {
			c.remember(token, id)
		}
		return id, err
	})
	if err != nil {
		return store.Identity{}, err
	}
	return v.(store.Identity), nil
}

// remember caches a valid identity and watches its kill channels.
func (c *tokenCache) remember(token string, id store.Identity) {
	c.mu.Lock()
	if len(c.entries) >= c.max {
		c.mu.Unlock()
		return
	}
	if old := c.entries[token]; old != nil {
		old.expires = time.Now().Add(c.ttl)
		old.id = id
		c.mu.Unlock()
		return
	}
	w := c.edge.newSession(id, transportSSE)
	e := &tokenEntry{id: id, expires: time.Now().Add(c.ttl), watch: w}
	w.onKill = func() { c.evict(token, e) }
	c.entries[token] = e
	c.mu.Unlock()
	if err := w.subscribeSystem(); err != nil {
		// Without the kill subscription the entry must not serve hits.
		c.evict(token, e)
	}
}

// evict drops an entry (if it is still the cached one) and its
// subscriptions.
func (c *tokenCache) evict(token string, e *tokenEntry) {
	c.mu.Lock()
	if c.entries[token] == e {
		delete(c.entries, token)
	}
	c.mu.Unlock()
	e.watch.unsubscribeAll()
}

// sweep removes expired entries every interval until ctx is done.
func (c *tokenCache) sweep(ctx context.Context) {
	if c.ttl <= 0 {
		return
	}
	t := time.NewTicker(c.ttl / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			c.mu.Lock()
			all := c.entries
			c.entries = make(map[string]*tokenEntry)
			c.mu.Unlock()
			for _, e := range all {
				e.watch.unsubscribeAll()
			}
			return
		case now := <-t.C:
			var expired []*tokenEntry
			c.mu.Lock()
			for tok, e := range c.entries {
				if now.After(e.expires) {
					delete(c.entries, tok)
					expired = append(expired, e)
				}
			}
			c.mu.Unlock()
			for _, e := range expired {
				e.watch.unsubscribeAll()
			}
		}
	}
}

// size reports the number of cached tokens.
func (c *tokenCache) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
