package loadgen

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Message is one Redis pub/sub message. Channel is the logical channel name
// (timeline:…); namespacing is the publisher's business.
type Message struct {
	Channel string
	Data    []byte
}

// Publisher delivers batches of messages to the server's pub/sub bus.
// Publish must not retain msgs or their Data after returning.
type Publisher interface {
	Publish(ctx context.Context, msgs []Message) error
}

// RedisPublisher publishes with PUBLISH in one pipeline per batch, prefixing
// channels with "NS:" when a REDIS_NAMESPACE is configured.
type RedisPublisher struct {
	client *redis.Client
	prefix string
}

// NewRedisPublisher returns a publisher on client. namespace is the
// server's REDIS_NAMESPACE ("" for none).
func NewRedisPublisher(client *redis.Client, namespace string) *RedisPublisher {
	p := &RedisPublisher{client: client}
	if namespace != "" {
		p.prefix = namespace + ":"
	}
	return p
}

// Publish implements Publisher.
func (p *RedisPublisher) Publish(ctx context.Context, msgs []Message) error {
	_, err := p.client.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for _, m := range msgs {
			pipe.Publish(ctx, p.prefix+m.Channel, m.Data)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis publish: %w", err)
	}
	return nil
}
