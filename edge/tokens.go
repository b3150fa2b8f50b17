package edge

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/spillway/spillway/edge/store"
	"github.com/spillway/spillway/shared/channel"
)

// tokenCache answers token lookups so that a reconnect storm costs
// Postgres at most one query per distinct token: concurrent lookups of one
// token share a query, and a valid result is kept for a short while.
//
// Revocation stays as fresh as Mastodon's: Rails publishes `kill` on the
// token's (or the account's) system channel when it revokes the token,
// disables the user or suspends the account, and the hub, which receives
// every system channel, hands each kill to evict, so the next connection
// queries Postgres again. A kill that arrives while a lookup is in flight
// keeps that lookup's result out of the cache. Invalid tokens are never
// cached.
type tokenCache struct {
	store   Store
	timeout time.Duration
	ttl     time.Duration
	max     int
	queries func() // counts a Postgres lookup
	group   singleflight.Group

	mu      sync.Mutex
	entries map[string]*tokenEntry
	kills   uint64 // kills seen; guarded by mu
}

type tokenEntry struct {
	id      store.Identity
	expires time.Time
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
		c.mu.Lock()
		kills := c.kills
		c.mu.Unlock()
		c.queries()
		id, err := c.store.Authenticate(qctx, token)
		if err == nil && c.ttl > 0 {
			c.remember(token, id, kills)
		}
		return id, err
	})
	if err != nil {
		return store.Identity{}, err
	}
	return v.(store.Identity), nil
}

// remember caches a valid identity, unless a kill arrived since the lookup
// began (kills is the count then).
func (c *tokenCache) remember(token string, id store.Identity, kills uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.kills != kills {
		return
	}
	if e := c.entries[token]; e != nil {
		e.id, e.expires = id, time.Now().Add(c.ttl)
		return
	}
	if len(c.entries) >= c.max {
		return
	}
	c.entries[token] = &tokenEntry{id: id, expires: time.Now().Add(c.ttl)}
}

// evict drops every entry a kill on channel name concerns: the token's for
// an access-token channel, all of the account's for a system channel.
// Kills are rare, so a scan of the bounded cache does.
func (c *tokenCache) evict(name channel.Name) {
	tokenID, isToken := channel.AccessTokenID(name)
	accountID, isAccount := channel.SystemAccountID(name)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.kills++
	for tok, e := range c.entries {
		if isToken && e.id.TokenID == tokenID || isAccount && e.id.AccountID == accountID {
			delete(c.entries, tok)
		}
	}
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
			return
		case now := <-t.C:
			c.mu.Lock()
			for tok, e := range c.entries {
				if now.After(e.expires) {
					delete(c.entries, tok)
				}
			}
			c.mu.Unlock()
		}
	}
}

// size reports the number of cached tokens.
func (c *tokenCache) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
