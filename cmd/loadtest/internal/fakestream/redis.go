package fakestream

import (
	"context"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// FollowRedis subscribes to every timeline channel under namespace (as a
// Mastodon streaming server with REDIS_NAMESPACE would) and forwards each
// message to Publish until ctx ends. It returns once the subscription is
// active.
func (s *Server) FollowRedis(ctx context.Context, c *redis.Client, namespace string) error {
	prefix := ""
	if namespace != "" {
		prefix = namespace + ":"
	}
	sub := c.PSubscribe(ctx, prefix+"timeline:*")
	if _, err := sub.Receive(ctx); err != nil {
		_ = sub.Close()
		return fmt.Errorf("psubscribe: %w", err)
	}
	go func() {
		defer func() { _ = sub.Close() }()
		ch := sub.Channel()
		for {
			select {
			case <-ctx.Done():
				return
			case m, ok := <-ch:
				if !ok {
					return
				}
				s.Publish(strings.TrimPrefix(m.Channel, prefix), []byte(m.Payload))
			}
		}
	}()
	return nil
}
