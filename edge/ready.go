package edge

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spillway/spillway/shared/bus"
	"github.com/spillway/spillway/shared/readiness"
)

// Defaults of the readiness settings.
const (
	defaultNATSShedAfter = 30 * time.Second
	defaultPostgresPing  = 10 * time.Second
	// maxPingTimeout bounds one Postgres ping.
	maxPingTimeout = 5 * time.Second
	// downPing is how often Postgres is pinged while it is down.
	downPing = 2 * time.Second
)

// errNATSDown refuses new streams while the edge sheds its clients: Spillway's
// own refusal, like errDraining, telling the client to reconnect elsewhere.
var errNATSDown = &apiError{503, "Streaming temporarily unavailable"}

// Pinger is implemented by a Store that can check Postgres cheaply; the
// edge then tracks Postgres for /readyz. *store.PG implements it.
type Pinger interface {
	Ping(ctx context.Context) error
}

// readyState is what the edge knows of its dependencies.
type readyState struct {
	set  *readiness.Set
	nats *readiness.Dependency
	pg   *readiness.Dependency // nil when the Store cannot ping
	ping Pinger

	// shedding is set while NATS has been down longer than NATSShedAfter:
	// clients are being closed and new ones refused.
	shedding atomic.Bool
}

// initReadiness sets the readiness defaults and the tracked dependencies.
func (e *Edge) initReadiness() {
	c := &e.cfg
	if c.NATSShedAfter == 0 {
		c.NATSShedAfter = defaultNATSShedAfter
	}
	if c.PostgresPing <= 0 {
		c.PostgresPing = defaultPostgresPing
	}
	if c.Readiness == nil {
		c.Readiness = readiness.NewSet(e.logger)
	}
	r := &e.ready
	r.set = c.Readiness
	r.nats = r.set.Add("nats", "")
	if p, ok := c.Store.(Pinger); ok {
		r.ping = p
		r.pg = r.set.Add("postgres", "")
	}
	if rs, ok := c.Store.(interface{ Retries() uint64 }); ok {
		c.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "spillway_pg_retries_total",
			Help: "Postgres statements run a second time because their pooled connection was dead.",
		}, func() float64 { return float64(rs.Retries()) }))
	}
}

// runReadiness follows NATS, pings Postgres and sheds clients while NATS is
// down, until ctx is done. Run owns it.
func (e *Edge) runReadiness(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { bus.WatchStatus(ctx, e.cfg.NATS, e.ready.nats.Observe) })
	if e.ready.pg != nil {
		wg.Go(func() { e.pingPostgres(ctx) })
	}
	e.shedWhileNATSDown(ctx)
	wg.Wait()
}

// pingPostgres pings at once, which checks Postgres at startup, then every
// PostgresPing unless a real query has reported it up in the meantime: a
// probe of /readyz never runs a query, and a busy edge pings rarely. While
// Postgres is down it pings every downPing at most, so that readiness
// returns soon after Postgres does even with no client left to query.
func (e *Edge) pingPostgres(ctx context.Context) {
	interval := e.cfg.PostgresPing
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pg := e.ready.pg
		if !pg.Up() || time.Since(pg.Observed()) >= interval {
			pctx, cancel := context.WithTimeout(ctx, min(interval, maxPingTimeout))
			err := e.ready.ping.Ping(pctx)
			cancel()
			if ctx.Err() != nil {
				return
			}
			pg.Observe(err)
		}
		next := interval
		if !pg.Up() {
			next = min(interval, downPing)
		}
		t.Reset(next)
	}
}

// shedWhileNATSDown watches the NATS state; once it has been down for
// NATSShedAfter, the edge closes its clients, spread over ShutdownGrace so
// the load balancer moves them without a stampede, and refuses new streams
// until NATS is back. Clients that slipped in meanwhile are closed at the
// next check.
func (e *Edge) shedWhileNATSDown(ctx context.Context) {
	after := e.cfg.NATSShedAfter
	if after < 0 {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(max(min(after/4, time.Second), 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st := e.ready.nats.Status()
		down := st.State != readiness.Up && time.Since(st.Since) >= after
		switch {
		case down && !e.ready.shedding.Load():
			e.ready.shedding.Store(true)
			e.logger.Warn("NATS down too long: closing clients so the load balancer moves them, refusing new ones until it is back",
				"nats_down_since", st.Since, "shed_after", after.String(), "clients", e.conns.Load())
		case !down && e.ready.shedding.Load():
			e.ready.shedding.Store(false)
			e.logger.Info("NATS back: accepting clients again")
		}
		if down && !e.draining.Load() {
			e.shed(ctx, e.cfg.ShutdownGrace)
		}
	}
}

// shed closes the sessions open now as shutdown does (WebSocket close
// 1001, SSE response completed), spread over window, and stops early when
// NATS comes back or ctx ends.
func (e *Edge) shed(ctx context.Context, window time.Duration) {
	closed, total := e.closeSessions(window, ctx.Done(), e.ready.nats.Up, reasonNATSLost)
	if closed < total {
		e.logger.Info("NATS back: stopped closing clients", "closed", closed, "kept", total-closed)
		return
	}
	if total > 0 {
		e.logger.Info("clients closed while NATS is down", "closed", closed, "over", window.String())
	}
}

// readyReport is the edge's /readyz answer.
type readyReport struct {
	Ready bool `json:"ready"`
	// Draining is set from shutdown on; Shedding while NATS has been down
	// long enough that clients are closed and refused.
	Draining     bool                        `json:"draining"`
	Shedding     bool                        `json:"shedding"`
	Dependencies map[string]readiness.Status `json:"dependencies"`
}

// serveReady answers the readiness probe: 200 when NATS and Postgres (and,
// all-in-one, the Redis subscription) are up and the edge is not draining.
// It runs no query.
func (e *Edge) serveReady(w http.ResponseWriter) {
	deps := e.ready.set.Report()
	r := readyReport{Draining: e.draining.Load(), Shedding: e.ready.shedding.Load(), Dependencies: deps.Dependencies}
	r.Ready = deps.Ready && !r.Draining
	readiness.WriteJSON(w, r.Ready, r)
}
