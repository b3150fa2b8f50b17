// Package edge is Spillway's client-facing tier: Mastodon's streaming HTTP
// surface (health, metrics, Server-Sent Events, WebSocket), authentication
// against Mastodon's Postgres, per-user filtering of public and hashtag
// statuses, and a local fan-out that holds one NATS subscription per channel
// however many clients want it.
//
// An edge keeps no state that outlives its process: any number of edges can
// run behind a load balancer. It never talks to Redis; the broker does.
package edge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/spillway/spillway/edge/keyword"
	"github.com/spillway/spillway/edge/store"
	"github.com/spillway/spillway/shared/channel"
	"github.com/spillway/spillway/shared/readiness"
)

// Store is what the edge needs from Mastodon's database. *store.PG
// implements it.
type Store interface {
	Authenticate(ctx context.Context, token string) (store.Identity, error)
	OwnsList(ctx context.Context, list string, accountID int64) (bool, error)
	FeedAccess(ctx context.Context, kind store.FeedKind) (blockLocal, blockRemote bool, err error)
	Excluded(ctx context.Context, viewers []int64, st store.StatusRef) (map[int64]bool, error)
	KeywordFilters(ctx context.Context, accountIDs []int64) (map[int64][]keyword.Filter, error)
}

// Config configures an edge. Zero values mean the documented defaults.
type Config struct {
	// Listener accepts client connections (TCP or a Unix socket). Required.
	Listener net.Listener
	// TLS, when set, makes the edge serve HTTPS on Listener, with HTTP/2
	// as well as HTTP/1.1 (offered by ALPN): a browser's EventSources
	// then share one connection. Its GetCertificate may swap certificates
	// while the edge runs. Nil serves plain HTTP/1.1.
	TLS *tls.Config
	// NATS is the connection events arrive on. Required; the caller closes it.
	NATS *nats.Conn
	// Local means events are handed to Deliver in process by an
	// all-in-one broker, instead of arriving on NATS subscriptions; NATS
	// still carries interest and resync messages.
	Local bool
	// Store answers Mastodon database queries. Required.
	Store Store
	// Subjects maps channels to NATS subjects; the zero value uses the
	// "mastodon" prefix. Must match the broker's.
	Subjects channel.Subjects
	// Logger receives the edge's logs. Nil discards them.
	Logger *slog.Logger
	// Registry receives the edge's metrics and is served at /metrics. Nil
	// means a new registry.
	Registry *prometheus.Registry

	// SSEHeartbeat is the interval of ":thump" comments. Default 15 s.
	SSEHeartbeat time.Duration
	// PingInterval is the WebSocket ping interval; a client that has not
	// answered the previous ping by the next one is dropped. Default 30 s.
	PingInterval time.Duration
	// InterestInterval is how often the edge re-announces the channels it
	// serves, keeping `subscribed:` keys alive. Default 360 s (Mastodon's).
	InterestInterval time.Duration
	// WriteTimeout bounds one blocked write to a client. Default 10 s.
	WriteTimeout time.Duration
	// MaxQueueFrames and MaxQueueBytes bound what may wait for one slow
	// client before it is disconnected. Defaults 512 frames, 4 MiB.
	MaxQueueFrames int
	MaxQueueBytes  int
	// MaxMessageSize bounds one WebSocket message from a client.
	// Default 64 KiB (a subscribe message is well under 1 KiB).
	MaxMessageSize int64
	// TokenCacheTTL is how long a valid token's identity is reused for new
	// connections; `kill` evicts it at once. Default 30 s; negative
	// disables the cache (concurrent lookups are still merged).
	TokenCacheTTL time.Duration
	// TokenCacheSize bounds cached tokens. Default 100,000.
	TokenCacheSize int
	// QueryTimeout bounds every Postgres query. Default 15 s, Mastodon's
	// pool connect timeout.
	QueryTimeout time.Duration
	// Dispatchers is the number of fan-out goroutines. Default GOMAXPROCS.
	Dispatchers int
	// DispatchQueue bounds NATS messages waiting per dispatcher; beyond it
	// NATS reports a slow consumer and drops. Default 65536.
	DispatchQueue int
	// FilterQueue bounds statuses waiting for their Postgres filter
	// decision per dispatcher; beyond it they are dropped and counted.
	// Default 1024.
	FilterQueue int
	// MaxConnections caps concurrent client connections; beyond it new
	// ones get 503. Zero means no cap.
	MaxConnections int
	// Limits bound what one client may take of the edge; the zero value
	// limits nothing (DefaultLimits are the edge command's defaults).
	Limits Limits
	// TrustedProxies are the proxies whose X-Forwarded-For names the
	// client, whose address per-address limits count and logs show. Nil
	// means DefaultTrustedProxies.
	TrustedProxies *TrustedProxies
	// ShutdownDelay keeps serving (health reporting 503) before closing
	// clients, so a load balancer stops routing here first. Default 0.
	ShutdownDelay time.Duration
	// ShutdownGrace is the window over which clients are closed on
	// shutdown, spread out to avoid a reconnect storm elsewhere. Default 5 s.
	ShutdownGrace time.Duration

	// Readiness holds the dependency states served at /readyz and logged
	// on each change. New adds "nats", and "postgres" when the Store is a
	// Pinger, unless the set has them already (the caller may add them
	// first with their addresses, and "redis" for an all-in-one broker).
	// Nil means a set of the edge's own.
	Readiness *readiness.Set
	// NATSShedAfter is how long the NATS connection may be down before
	// the edge closes its clients (spread over ShutdownGrace) so the load
	// balancer moves them, refusing new ones until NATS is back. Default
	// 30 s; negative never sheds.
	NATSShedAfter time.Duration
	// PostgresPing is how often Postgres is pinged while no query has
	// reported on it. Default 10 s.
	PostgresPing time.Duration
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.SSEHeartbeat, 15*time.Second)
	def(&c.PingInterval, 30*time.Second)
	def(&c.InterestInterval, 360*time.Second)
	def(&c.WriteTimeout, 10*time.Second)
	def(&c.QueryTimeout, 15*time.Second)
	def(&c.ShutdownGrace, 5*time.Second)
	def(&c.TokenCacheTTL, 30*time.Second)
	if c.TokenCacheSize == 0 {
		c.TokenCacheSize = 100_000
	}
	if c.MaxQueueFrames == 0 {
		c.MaxQueueFrames = 512
	}
	if c.MaxQueueBytes == 0 {
		c.MaxQueueBytes = 4 << 20
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = 64 << 10
	}
	if c.Dispatchers == 0 {
		c.Dispatchers = runtime.GOMAXPROCS(0)
	}
	if c.DispatchQueue == 0 {
		c.DispatchQueue = 1 << 16
	}
	if c.FilterQueue == 0 {
		c.FilterQueue = 1024
	}
	if c.TrustedProxies == nil {
		c.TrustedProxies, _ = ParseTrustedProxies(DefaultTrustedProxies)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
	}
}

// Edge serves Mastodon's streaming API.
type Edge struct {
	cfg            Config
	logger         *slog.Logger
	store          Store
	tokens         *tokenCache
	hub            *hub
	filter         *filterer
	metrics        *metrics
	limits         outboxLimits
	perClient      *clientLimits
	metricsHandler http.Handler

	// keepAlive holds, per transport, the wheel that runs each session's
	// keep-alive: SSE heartbeats, WebSocket pings.
	keepAlive [2]*wheel
	watch     *watcher // waits for input on idle client sockets
	// wsWritePool is handed to gorilla so that its handshake allocates no
	// write buffer; gorilla never writes after the handshake.
	wsWritePool sync.Pool
	// tlsBuffers gather each TLS client's writes of a round (tls.go).
	tlsBuffers sync.Pool

	draining atomic.Bool
	conns    atomic.Int64 // admitted client connections
	ready    readyState

	// sessions tracks live sessions for shutdown; guarded by mu.
	mu       sync.Mutex
	sessions map[*session]struct{}
	wg       sync.WaitGroup // session goroutines
}

// New validates cfg and builds an edge. It does no I/O.
func New(cfg Config) (*Edge, error) {
	if cfg.Listener == nil || cfg.NATS == nil || cfg.Store == nil {
		return nil, errors.New("edge: Listener, NATS and Store are required")
	}
	if err := channel.ValidPrefix(cfg.Subjects.Prefix); cfg.Subjects.Prefix != "" && err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}
	if err := cfg.Limits.validate(); err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}
	cfg.setDefaults()
	e := &Edge{
		cfg:       cfg,
		logger:    cfg.Logger.With("component", "edge"),
		store:     cfg.Store,
		sessions:  make(map[*session]struct{}),
		perClient: newClientLimits(cfg.Limits),
		limits: outboxLimits{
			maxFrames:    cfg.MaxQueueFrames,
			maxBytes:     cfg.MaxQueueBytes,
			writeTimeout: cfg.WriteTimeout,
		},
	}
	pool, _ := cfg.Store.(PoolStats)
	e.metrics = newMetrics(cfg.Registry, pool, cfg.NATS.IsConnected)
	e.metricsHandler = promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{})
	e.initReadiness()
	e.tokens = &tokenCache{store: cfg.Store, timeout: cfg.QueryTimeout, ttl: cfg.TokenCacheTTL,
		max: cfg.TokenCacheSize, queries: e.metrics.tokenQueries.Inc, entries: make(map[string]*tokenEntry)}
	e.hub = newHub(cfg.NATS, cfg.Subjects, cfg.Local, cfg.Dispatchers, cfg.DispatchQueue, e.logger, e.metrics)
	e.hub.onKill = e.tokens.evict
	e.filter = newFilterer(cfg.Store, cfg.Dispatchers, cfg.FilterQueue, cfg.QueryTimeout, e.logger, e.metrics)
	e.hub.filter = e.filter
	keepAlive := func(s *session) { s.ops.keepAlive() }
	e.keepAlive[transportSSE] = newWheel(cfg.SSEHeartbeat, 15, keepAlive)
	e.keepAlive[transportWS] = newWheel(cfg.PingInterval, 30, keepAlive)
	return e, nil
}

// Run serves until ctx is done, then shuts down gracefully: health turns
// 503, after ShutdownDelay new connections are refused and every client is
// closed properly (WebSocket close 1001, SSE end of response), spread over
// ShutdownGrace. Run returns once every goroutine it started has returned.
func (e *Edge) Run(ctx context.Context) error {
	srv := &http.Server{
		Handler:           e,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Second, // Mastodon's keep-alive timeout
		MaxHeaderBytes:    16 << 10,        // Node's limit: larger headers get 431
		ErrorLog:          slog.NewLogLogger(e.logger.Handler(), slog.LevelDebug),
	}
	if e.cfg.TLS != nil {
		srv.TLSConfig = e.cfg.TLS.Clone()
	}
	if err := e.hub.subscribeSystem(5 * time.Second); err != nil {
		return err
	}
	watch, err := newWatcher(e.logger)
	if err != nil {
		e.hub.unsubscribeSystem()
		return err
	}
	e.watch = watch // before Serve: handlers start after this
	bg, stopBG := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { e.hub.run(bg) })
	wg.Go(func() { e.filter.run(bg) })
	wg.Go(func() { e.hub.refreshInterest(bg, e.cfg.InterestInterval) })
	for _, w := range e.keepAlive {
		wg.Go(func() { w.run(bg) })
	}
	wg.Go(func() { e.watch.run(bg) })
	wg.Go(func() { e.tokens.sweep(bg) })
	wg.Go(func() { e.runReadiness(bg) })

	serveErr := make(chan error, 1)
	go func() {
		if e.cfg.TLS == nil {
			serveErr <- srv.Serve(e.cfg.Listener)
			return
		}
		// ServeTLS offers h2 and http/1.1 by ALPN; the certificate
		// comes from srv.TLSConfig.
		serveErr <- srv.ServeTLS(e.cfg.Listener, "", "")
	}()

	select {
	case <-ctx.Done():
	case err = <-serveErr:
		err = fmt.Errorf("edge: serve: %w", err)
	}
	// Under mu, so that no session is tracked (wg.Add) once draining is
	// visible and waitSessions may call wg.Wait.
	e.mu.Lock()
	e.draining.Store(true)
	clients := len(e.sessions)
	e.mu.Unlock()
	drainStart := time.Now()
	e.logger.Info("draining", "clients", clients, "delay", e.cfg.ShutdownDelay.String(), "grace", e.cfg.ShutdownGrace.String())
	if err == nil && e.cfg.ShutdownDelay > 0 {
		time.Sleep(e.cfg.ShutdownDelay)
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), e.cfg.ShutdownGrace+5*time.Second)
	defer cancel()
	// Shutdown stops accepting and waits for plain requests; streams are
	// hijacked, so they are closed here, spread over the grace period.
	sessionsGone := make(chan struct{})
	var closer sync.WaitGroup
	closer.Go(func() { e.closeSessions(e.cfg.ShutdownGrace, sessionsGone, nil, reasonShutdown) })
	if serr := srv.Shutdown(shutCtx); serr != nil && err == nil {
		err = fmt.Errorf("edge: shutdown: %w", serr)
	}
	cut := e.waitSessions(shutCtx)
	close(sessionsGone)
	e.logger.Info("drained", "took", time.Since(drainStart).Round(time.Millisecond).String(), "cut", cut)
	closer.Wait()
	stopBG()
	wg.Wait()
	if err == nil {
		if serr := <-serveErr; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
			err = fmt.Errorf("edge: serve: %w", serr)
		}
	}
	return err
}

// closeSessions ends every session open now as shutdown does (WebSocket
// close 1001, SSE response completed), for why, spreading the closes over
// window. It returns early once stop is closed or halt (if set) reports
// true, and reports how many of how many sessions it closed.
func (e *Edge) closeSessions(window time.Duration, stop <-chan struct{}, halt func() bool, why closeReason) (closed, total int) {
	e.mu.Lock()
	all := make([]*session, 0, len(e.sessions))
	for s := range e.sessions {
		all = append(all, s)
	}
	e.mu.Unlock()
	if len(all) == 0 {
		return 0, 0
	}
	step := window / time.Duration(len(all))
	var t *time.Timer
	for i, s := range all {
		if halt != nil && halt() {
			return i, len(all)
		}
		s.ops.goingAway(why)
		if step <= 0 {
			continue
		}
		if t == nil {
			t = time.NewTimer(step)
			defer t.Stop()
		} else {
			t.Reset(step)
		}
		select {
		case <-t.C:
		case <-stop:
			return i + 1, len(all)
		}
	}
	return len(all), len(all)
}

// waitSessions waits for session goroutines, or until ctx ends, when the
// remaining sockets are cut; it reports how many were.
func (e *Edge) waitSessions(ctx context.Context) (cut int) {
	done := make(chan struct{})
	go func() { e.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		e.mu.Lock()
		for s := range e.sessions {
			s.out.abort(reasonShutdown)
			cut++
		}
		e.mu.Unlock()
		<-done
	}
	return cut
}

// track registers a session for shutdown; it returns false when the edge is
// draining.
func (e *Edge) track(s *session) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.draining.Load() {
		return false
	}
	e.sessions[s] = struct{}{}
	e.wg.Add(1)
	return true
}

func (e *Edge) untrack(s *session) {
	e.mu.Lock()
	delete(e.sessions, s)
	e.mu.Unlock()
	e.wg.Done()
}

// queryContext bounds one Postgres query made on a client's behalf.
func (e *Edge) queryContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), e.cfg.QueryTimeout)
}

// Deliver hands the edge one message of channel name, as Rails published
// it, when events come in process (Config.Local): an all-in-one broker
// calls it for every message, in Redis order, and the edge decodes and
// writes it on the caller's goroutine (it never blocks on a client). data
// is only read, and may be referenced after Deliver returns.
func (e *Edge) Deliver(name channel.Name, data []byte, received time.Time) {
	e.hub.deliver(name, data, received)
}

// Subscriptions reports how many NATS subscriptions the edge holds: one per
// stream channel with local subscribers, plus two wildcards that carry every
// system and access-token channel while it runs.
func (e *Edge) Subscriptions() int { return e.hub.natsSubscriptions() }
