package edge

import (
	"context"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/spillway/spillway/edge/store"
)

// tokenLookups de-duplicates concurrent lookups of the same token: when a
// thousand clients of one bot reconnect at once, Postgres sees one query.
// Nothing is cached beyond the in-flight query, so revocation is exactly as
// fresh as Mastodon's.
type tokenLookups struct {
	store   Store
	timeout time.Duration
	group   singleflight.Group
}

func (t *tokenLookups) lookup(ctx context.Context, token string) (store.Identity, error) {
	v, err, _ := t.group.Do(token, func() (any, error) {
		// The first caller's context must not cancel the lookup for the
		// others waiting on it.
		qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.timeout)
		defer cancel()
		return t.store.Authenticate(qctx, token)
	})
	if err != nil {
		return store.Identity{}, err
	}
	return v.(store.Identity), nil
}
