// Package broker is Spillway's bridge from Mastodon's Redis to NATS.
// It pattern-subscribes to every timeline channel, republishes each message
// byte for byte on the channel's NATS subject, and keeps the `subscribed:`
// keys Rails checks before publishing home, list, notification and direct
// events alive for every channel some edge serves.
//
// Several brokers may run for one Mastodon with a lease (Config.Lease):
// all of them receive every message and write the keys, which therefore
// never lapse while one of them runs, but only the lease holder publishes;
// a standby takes over when the holder releases the lease or stops
// renewing it. Redis messages carry no id, so two publishing brokers could
// not tell a duplicate from two identical events.
//
// The broker never parses a payload: a message Rails or anyone else puts on
// a timeline channel, however malformed, is forwarded unchanged and judged
// by the edges.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"

	"github.com/spillway/spillway/shared/bus"
	"github.com/spillway/spillway/shared/channel"
	"github.com/spillway/spillway/shared/readiness"
)

// Config configures a broker. Zero values mean the documented defaults.
type Config struct {
	// Namespace is REDIS_NAMESPACE; "" means none. Channels and keys are
	// prefixed with "<Namespace>:".
	Namespace string
	// Subjects maps channels to NATS subjects; must match the edges'.
	Subjects channel.Subjects
	// KeyTTL is the lifetime of a `subscribed:` key. Default 1080 s
	// (Mastodon's).
	KeyTTL time.Duration
	// Refresh is how often live interest is written to Redis again.
	// Default 360 s (Mastodon's).
	Refresh time.Duration
	// InterestQueue bounds interest messages waiting to be written to
	// Redis. Default 4096.
	InterestQueue int
	// Logger receives the broker's logs. Nil discards them.
	Logger *slog.Logger
	// Registerer receives the broker's metrics. Nil means none.
	Registerer prometheus.Registerer
	// Redis records the state of the Redis subscription: logged on each
	// change and reported by readiness probes. Nil means one of the
	// broker's own, which only logs.
	Redis *readiness.Dependency
	// Local, when set, receives every message in process (all-in-one's
	// edge), on the broker's goroutine and in Redis order, instead of
	// through NATS. A message then goes on NATS too only when Remote
	// reports that some NATS client listens on its subject (edges joining
	// an all-in-one process); nil Remote means none ever does.
	Local  Sink
	Remote func(subject string) bool
	// Lease, when its TTL is set, makes this broker publish only while it
	// holds a lease in Redis, so that a second broker can stand by.
	Lease LeaseConfig
}

// Sink takes messages in process: channel name, the message as Rails
// published it (read only; it may be kept), and when the broker got it.
type Sink interface {
	Deliver(name channel.Name, data []byte, received time.Time)
}

// Broker forwards Redis timeline messages to NATS.
type Broker struct {
	cfg    Config
	prefix string
	rdb    redis.UniversalClient
	nc     *nats.Conn
	logger *slog.Logger

	redis     *readiness.Dependency
	forwarded prometheus.Counter
	failed    prometheus.Counter
	dropped   *prometheus.CounterVec
	badName   prometheus.Counter // dropped{reason="invalid_channel"}
	keys      prometheus.Gauge
	// badNameLog limits the log lines about dropped messages: a
	// publisher repeating one can produce thousands a second.
	badNameLog rate.Sometimes
	discarded  prometheus.Counter
	lease      *lease // nil: always publish

	mu       sync.Mutex
	interest map[string]time.Time // channel → when its key expires
}

// New validates cfg. It does no I/O.
func New(cfg Config, rdb redis.UniversalClient, nc *nats.Conn) (*Broker, error) {
	if rdb == nil || nc == nil {
		return nil, errors.New("broker: redis client and NATS connection are required")
	}
	if cfg.Subjects.Prefix != "" {
		if err := channel.ValidPrefix(cfg.Subjects.Prefix); err != nil {
			return nil, fmt.Errorf("broker: %w", err)
		}
	}
	if cfg.KeyTTL == 0 {
		cfg.KeyTTL = 1080 * time.Second
	}
	if cfg.Refresh == 0 {
		cfg.Refresh = 360 * time.Second
	}
	if cfg.InterestQueue == 0 {
		cfg.InterestQueue = 4096
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	b := &Broker{
		cfg:      cfg,
		rdb:      rdb,
		nc:       nc,
		logger:   cfg.Logger.With("component", "broker"),
		redis:    cfg.Redis,
		interest: make(map[string]time.Time),
		forwarded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "spillway_broker_messages_forwarded_total",
			Help: "Redis timeline messages forwarded to edges: published on NATS, or handed to the edge in process (all-in-one).",
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "spillway_broker_publish_errors_total",
			Help: "Redis timeline messages that could not be published on NATS.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spillway_broker_messages_dropped_total",
			Help: "Redis timeline messages not republished on NATS, by reason.",
		}, []string{"reason"}),
		badNameLog: rate.Sometimes{First: 1, Interval: time.Minute},
		keys: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "spillway_broker_subscribed_keys",
			Help: "Channels whose subscribed: key the broker keeps alive.",
		}),
		discarded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "spillway_broker_messages_discarded_total",
			Help: "Redis timeline messages a standby broker received and left to the leader.",
		}),
	}
	if b.redis == nil {
		b.redis = readiness.NewSet(b.logger).Add("redis", "")
	}
	b.badName = b.dropped.WithLabelValues("invalid_channel")
	if cfg.Namespace != "" {
		b.prefix = cfg.Namespace + ":"
	}
	if cfg.Lease.TTL != 0 {
		if cfg.Lease.Key == "" {
			cfg.Lease.Key = LeaseKey(cfg.Namespace, cfg.Subjects)
		}
		l, err := newLease(cfg.Lease, rdb, b.logger)
		if err != nil {
			return nil, err
		}
		b.lease = l
	}
	if reg := cfg.Registerer; reg != nil {
		up := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "spillway_redis_connected",
			Help: "1 while the broker's Redis subscription is established.",
		}, func() float64 {
			if b.redis.Up() {
				return 1
			}
			return 0
		})
		if err := errors.Join(reg.Register(b.forwarded), reg.Register(b.failed), reg.Register(b.dropped), reg.Register(b.keys), reg.Register(up)); err != nil {
			return nil, fmt.Errorf("broker: metrics: %w", err)
		}
		if l := b.lease; l != nil {
			leader := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "spillway_broker_leader",
				Help: "1 while this broker holds the lease and publishes events, 0 while it is standby.",
			}, func() float64 {
				if l.held() {
					return 1
				}
				return 0
			})
			if err := errors.Join(reg.Register(leader), reg.Register(l.changes), reg.Register(b.discarded)); err != nil {
				return nil, fmt.Errorf("broker: metrics: %w", err)
			}
		}
	}
	return b, nil
}

// Run forwards messages and maintains interest until ctx is done. Redis
// outages are survived: the subscription is re-established by itself and
// live interest is written again at once.
func (b *Broker) Run(ctx context.Context) error {
	interest := make(chan *nats.Msg, b.cfg.InterestQueue)
	sub, err := b.nc.ChanSubscribe(b.cfg.Subjects.Interest(), interest)
	if err != nil {
		return fmt.Errorf("broker: subscribe interest: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	// A broker that starts, or whose NATS connection comes back, knows
	// nothing of what edges announced meanwhile: it asks them all. The
	// request follows the subscription on the same connection, so every
	// answer finds it in place.
	connected := b.nc.StatusChanged(nats.CONNECTED)
	defer b.nc.RemoveStatusListener(connected)
	b.askInterest()

	resync := make(chan struct{}, 1)
	var wg sync.WaitGroup
	if b.lease != nil {
		// Answered before the Redis subscription starts, so that a
		// broker alone publishes from its first message.
		first := b.lease.attempt(ctx)
		wg.Go(func() { b.lease.run(ctx, first) })
	}
	wg.Go(func() { b.forward(ctx, resync) })
	wg.Go(func() { b.maintain(ctx, interest, resync, connected) })
	wg.Wait()
	if err := b.nc.Flush(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		b.logger.Debug("nats flush on stop", "err", err)
	}
	return nil
}

// forward is the Redis → NATS pipe.
func (b *Broker) forward(ctx context.Context, resync chan<- struct{}) {
	ps := b.rdb.PSubscribe(ctx, b.prefix+"timeline:*")
	// A blocked Receive does not watch ctx; closing the PubSub ends it.
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer stop()
	defer ps.Close()
	backoff := 100 * time.Millisecond
	for {
		// ReceiveMessage rather than Channel(): no extra goroutine and
		// buffer, no silent drop; PubSub reconnects and re-subscribes on
		// the next call after an error.
		msg, err := ps.Receive(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			// Logged once per change by the dependency, including a
			// Redis unreachable from the start.
			b.redis.Observe(err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			backoff = 100 * time.Millisecond
			b.logger.Debug("redis subscribed", "pattern", m.Channel)
			b.redis.Observe(nil)
			// After a (re)connect Redis may have lost the keys.
			select {
			case resync <- struct{}{}:
			default:
			}
		case *redis.Message:
			b.publish(m)
		case *redis.Pong:
		}
	}
}

func (b *Broker) publish(m *redis.Message) {
	// A standby reads Redis, to take over at once, but publishes nothing.
	if b.lease != nil && !b.lease.held() {
		b.discarded.Inc()
		return
	}
	name, err := b.channelName(m.Channel)
	switch {
	case errors.Is(err, channel.ErrNameTooLong):
		// Publishing it would make NATS close the broker's connection.
		b.badName.Inc()
		b.badNameLog.Do(func() {
			b.logger.Warn("dropped a Redis message on a channel too long for a NATS subject; further drops are logged at most once a minute and counted in spillway_broker_messages_dropped_total",
				"channel", truncate(string(name), 64), "bytes", len(name), "max", channel.MaxNameLen)
		})
		return
	case err != nil:
		return
	}
	now := time.Now()
	// The payload string is immutable: its bytes are shared without a
	// copy (nats.go copies what it publishes into its own buffer).
	data := unsafe.Slice(unsafe.StringData(m.Payload), len(m.Payload))
	if b.cfg.Local != nil {
		b.cfg.Local.Deliver(name, data, now)
		b.forwarded.Inc()
		if b.cfg.Remote == nil {
			return
		}
	}
	subject := b.cfg.Subjects.Of(name)
	if b.cfg.Local != nil && !b.cfg.Remote(subject) {
		return
	}
	out := &nats.Msg{
		Subject: subject,
		Data:    data,
		Header:  nats.Header{bus.HeaderReceived: []string{strconv.FormatInt(now.UnixNano(), 10)}},
	}
	if err := b.nc.PublishMsg(out); err != nil {
		b.failed.Inc()
		b.logger.Warn("nats publish failed", "channel", string(name), "bytes", len(m.Payload), "err", err)
		return
	}
	b.forwarded.Inc()
}

// Leadership reports the broker's lease; ok is false for a broker without
// one, which always publishes.
func (b *Broker) Leadership() (l Leadership, ok bool) {
	if b.lease == nil {
		return Leadership{}, false
	}
	return b.lease.leadership(), true
}

// askInterest asks every edge to announce all the channels it serves.
func (b *Broker) askInterest() {
	if err := b.nc.Publish(b.cfg.Subjects.Resync(), nil); err != nil {
		b.logger.Warn("asking edges for their interest failed; they re-announce at their next refresh", "err", err)
	}
}

// errNotOurs is a Redis channel outside the namespace, which the pattern
// subscription never delivers.
var errNotOurs = errors.New("broker: channel outside the namespace")

// channelName maps a Redis channel to its channel name, or refuses it:
// outside the namespace, or a name [channel.CheckName] refuses (its NATS
// subject would be too long).
func (b *Broker) channelName(redisChannel string) (channel.Name, error) {
	rest, ok := strings.CutPrefix(redisChannel, b.prefix)
	if !ok {
		return "", errNotOurs
	}
	name := channel.Name(rest)
	if err := channel.CheckName(name); err != nil {
		return name, err
	}
	return name, nil
}

// truncate shortens s to at most n bytes for a log line, without splitting
// a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// maintain writes `subscribed:` keys for channels edges report, refreshes
// every live one each Refresh, rewrites them all after a Redis reconnect,
// and asks edges for their interest after a NATS reconnect.
func (b *Broker) maintain(ctx context.Context, in <-chan *nats.Msg, resync <-chan struct{}, connected <-chan nats.Status) {
	t := time.NewTicker(b.cfg.Refresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-in:
			names := bus.DecodeInterest(m.Data)
			// Drain what is already queued into the same pipeline.
			for more := true; more && len(names) < 10000; {
				select {
				case m := <-in:
					names = append(names, bus.DecodeInterest(m.Data)...)
				default:
					more = false
				}
			}
			b.remember(names)
			b.setKeys(ctx, names)
		case <-t.C:
			b.setKeys(ctx, b.live())
		case <-resync:
			b.setKeys(ctx, b.live())
		case <-connected:
			b.askInterest()
		}
	}
}

// remember records reported channels; a channel no edge reports again
// within KeyTTL is forgotten, as its key expires.
func (b *Broker) remember(names []string) {
	exp := time.Now().Add(b.cfg.KeyTTL)
	b.mu.Lock()
	for _, n := range names {
		b.interest[n] = exp
	}
	b.mu.Unlock()
}

func (b *Broker) live() []string {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]string, 0, len(b.interest))
	for n, exp := range b.interest {
		if now.After(exp) {
			delete(b.interest, n)
			continue
		}
		out = append(out, n)
	}
	b.keys.Set(float64(len(out)))
	return out
}

// setKeys runs SET <ns>subscribed:<channel> 1 EX <ttl> for each name, in
// pipelines of bounded size.
func (b *Broker) setKeys(ctx context.Context, names []string) {
	const batch = 1000
	for len(names) > 0 {
		n := min(batch, len(names))
		pipe := b.rdb.Pipeline()
		for _, name := range names[:n] {
			pipe.Set(ctx, b.prefix+"subscribed:"+name, "1", b.cfg.KeyTTL)
		}
		if _, err := pipe.Exec(ctx); err != nil && ctx.Err() == nil {
			b.logger.Warn("writing subscribed: keys failed; retried at the next refresh or reconnect", "err", err, "keys", n)
		}
		names = names[n:]
	}
}
