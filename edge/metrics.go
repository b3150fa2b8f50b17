package edge

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics holds the edge's Prometheus collectors: Mastodon's names, labels
// and help texts exactly, so dashboards built for Mastodon keep
// working, plus Spillway's own under spillway_.
type metrics struct {
	connectedClients  *prometheus.GaugeVec
	connectedChannels *prometheus.GaugeVec
	redisSubs         prometheus.Gauge
	redisMessages     prometheus.Counter
	messagesSent      *prometheus.CounterVec

	eventsReceived    *prometheus.CounterVec
	eventsDropped     *prometheus.CounterVec
	slowClients       *prometheus.CounterVec
	latency           prometheus.Histogram
	natsSubscriptions prometheus.Gauge
	filterQueries     *prometheus.CounterVec
	filterErrors      prometheus.Counter
	tokenQueries      prometheus.Counter
	filterJobs        prometheus.Counter
	framesWritten     *prometheus.CounterVec

	connectionsRefused   *prometheus.CounterVec
	subscriptionsRefused *prometheus.CounterVec
}

// channelLabels are the stream label values Mastodon primes.
var channelLabels = []string{"system", "user", "user:notification", "list", "direct",
	"public", "public:media", "public:local", "public:local:media", "public:remote",
	"public:remote:media", "hashtag", "hashtag:local"}

// PoolStats reports the Postgres pool for Mastodon's pg_pool_* gauges.
type PoolStats interface {
	PoolStats() (total, idle, waiting int)
}

func newMetrics(reg prometheus.Registerer, pool PoolStats, natsConnected func() bool) *metrics {
	m := &metrics{
		connectedClients: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "connected_clients",
			Help: "The number of clients connected to the streaming server",
		}, []string{"type"}),
		connectedChannels: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "connected_channels",
			Help: "The number of channels the streaming server is streaming to",
		}, []string{"type", "channel"}),
		redisSubs: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "redis_subscriptions",
			Help: "The number of Redis channels the streaming server is subscribed to",
		}),
		redisMessages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "redis_messages_received_total",
			Help: "The total number of messages the streaming server has received from redis subscriptions",
		}),
		messagesSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "messages_sent_total",
			Help: "The total number of messages the streaming server sent to clients per connection type",
		}, []string{"type"}),
		eventsReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spillway_events_received_total",
			Help: "Events received from NATS, by kind of channel.",
		}, []string{"kind"}),
		eventsDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spillway_events_dropped_total",
			Help: "Events or deliveries dropped by the edge, by reason.",
		}, []string{"reason"}),
		slowClients: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spillway_slow_clients_disconnected_total",
			Help: "Clients disconnected because they could not keep up, by connection type.",
		}, []string{"type"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "spillway_delivery_latency_seconds",
			Help:    "Time from Rails' queued_at (or the broker's receipt from Redis) to the last write of an event to this edge's clients: one observation per event (and per filtering batch).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		natsSubscriptions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "spillway_nats_subscriptions",
			Help: "NATS subscriptions held by this edge: one per stream channel with local subscribers, plus two wildcards for every system and access-token channel.",
		}),
		filterQueries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spillway_filter_queries_total",
			Help: "Postgres queries run to filter public and hashtag statuses, by query.",
		}, []string{"query"}),
		tokenQueries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "spillway_token_queries_total",
			Help: "Postgres access-token lookups; connections served from the token cache or sharing a lookup in flight run none.",
		}),
		filterErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "spillway_filter_errors_total",
			Help: "Filtering queries that failed or timed out; the event is dropped for the clients concerned.",
		}),
		framesWritten: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spillway_frames_written_total",
			Help: "Event frames handed to client sockets, by connection type (the same deliveries messages_sent_total counts, under Spillway's name).",
		}, []string{"type"}),
		connectionsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spillway_connections_refused_total",
			Help: "Streaming connections refused before they opened, by reason: the edge draining or shedding (nats_down), its own cap (max_connections), or a per-client limit.",
		}, []string{"reason"}),
		subscriptionsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spillway_subscriptions_refused_total",
			Help: "WebSocket subscribe messages refused by a per-socket limit, by reason.",
		}, []string{"reason"}),
		filterJobs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "spillway_filtered_statuses_total",
			Help: "Statuses on public and hashtag channels that went through per-user filtering.",
		}),
	}
	reg.MustRegister(m.framesWritten, m.filterJobs, m.connectedClients, m.connectedChannels, m.redisSubs, m.redisMessages,
		m.messagesSent, m.eventsReceived, m.eventsDropped, m.slowClients, m.latency,
		m.natsSubscriptions, m.filterQueries, m.filterErrors, m.tokenQueries,
		m.connectionsRefused, m.subscriptionsRefused)
	for _, t := range []string{"websocket", "eventsource"} {
		m.connectedClients.WithLabelValues(t)
		m.messagesSent.WithLabelValues(t)
		for _, c := range channelLabels {
			m.connectedChannels.WithLabelValues(t, c)
		}
	}
	for _, k := range []string{"malformed", "filter_queue_full", "filter_error", "invalid_status", "dispatch_queue_full"} {
		m.eventsDropped.WithLabelValues(k)
	}
	for _, k := range []string{refusedDraining, refusedNATS, refusedMax, refusedPerIP, refusedPerAccount, refusedConnectRate} {
		m.connectionsRefused.WithLabelValues(k)
	}
	for _, k := range []string{refusedStreams, refusedSubscribeRate} {
		m.subscriptionsRefused.WithLabelValues(k)
	}
	if pool != nil {
		reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "pg_pool_total_connections",
				Help: "The total number of clients existing within the pool",
			}, func() float64 { t, _, _ := pool.PoolStats(); return float64(t) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "pg_pool_idle_connections",
				Help: "The number of clients which are not checked out but are currently idle in the pool",
			}, func() float64 { _, i, _ := pool.PoolStats(); return float64(i) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "pg_pool_waiting_queries",
				Help: "The number of queued requests waiting on a client when all clients are checked out",
			}, func() float64 { _, _, w := pool.PoolStats(); return float64(w) }),
		)
	}
	if natsConnected != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "spillway_nats_connected",
			Help: "1 while the edge's NATS connection is up.",
		}, func() float64 {
			if natsConnected() {
				return 1
			}
			return 0
		}))
	}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// addSent counts one event's deliveries per transport in one step, and
// observes the event's latency once, at the end of its fan-out, so the
// fan-out loop reads no clock and does no atomic operation per client.
func (m *metrics) addSent(sent [2]int, ev *event) {
	if sent[transportSSE]+sent[transportWS] > 0 && !ev.queuedAt.IsZero() {
		m.observeLatency(ev.queuedAt)
	}
	if n := float64(sent[transportSSE]); n > 0 {
		m.messagesSent.WithLabelValues("eventsource").Add(n)
		m.framesWritten.WithLabelValues("eventsource").Add(n)
	}
	if n := float64(sent[transportWS]); n > 0 {
		m.messagesSent.WithLabelValues("websocket").Add(n)
		m.framesWritten.WithLabelValues("websocket").Add(n)
	}
}

// setSubscriptions reports the channels held and the NATS subscriptions
// behind them. Mastodon's redis_subscriptions keeps its meaning (distinct
// upstream channels of this process).
func (m *metrics) setSubscriptions(channels, nats int) {
	m.natsSubscriptions.Set(float64(nats))
	m.redisSubs.Set(float64(channels))
}

func (m *metrics) observeLatency(since time.Time) {
	m.latency.Observe(time.Since(since).Seconds())
}
